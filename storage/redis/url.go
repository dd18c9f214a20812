package redis

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

func init() {
	driver.Register("redis", OpenURL)
	driver.Register("rediss", OpenURL)
}

// OpenURL makes the go-redis client that a redis:// or rediss:// URL
// describes (the forms are in the package documentation) and an Adapter
// over it, which owns it: Close closes the client. It does not connect;
// the first call does. It is the opener the package registers for "redis"
// and "rediss".
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	c, opts, err := newClientFromURL(u)
	if err != nil {
		return nil, err
	}
	a, err := New(c, &opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	a.owned = true
	return a, nil
}

// newClientFromURL makes the go-redis client that a redis:// or rediss://
// URL describes and the Options its prefix parameter sets.
func newClientFromURL(u *url.URL) (goredis.UniversalClient, Options, error) {
	bad := func(why string, cause error) error {
		// The query is left out: a misspelt parameter ("pasword=") would
		// escape secret.RedactURL's masking.
		bare := *u
		bare.RawQuery, bare.Fragment = "", ""
		msg := fmt.Sprintf("redis: store URL %q: %s", secret.RedactURL(bare.String()), why)
		if cause != nil && leaksSecret(cause.Error(), u) {
			cause = nil
		}
		return driver.Wrap(driver.ErrInvalid, msg, cause)
	}
	q := u.Query()
	opts := Options{Prefix: DefaultPrefix}
	if q.Has("prefix") {
		opts.Prefix = q.Get("prefix")
		q.Del("prefix")
	}
	cluster, err := boolParam(q, "cluster", false)
	if err != nil {
		return nil, opts, bad("cluster must be true or false", nil)
	}
	// go-redis ignores ctx deadlines on reads unless told otherwise; the
	// storage contract wants a caller's ctx to bound every call.
	ctxTimeout, err := boolParam(q, "context_timeout_enabled", true)
	if err != nil {
		return nil, opts, bad("context_timeout_enabled must be true or false", nil)
	}

	hosts := strings.Split(u.Host, ",")
	for _, h := range hosts[1:] {
		if h == "" {
			return nil, opts, bad("empty host in the host list", nil)
		}
		q.Add("addr", h)
	}
	sentinel := q.Has("master_name")
	if !sentinel && q.Has("addr") {
		cluster = true
	}
	one := *u
	one.Host = hosts[0]
	one.RawQuery = q.Encode()
	single := one.String()

	var c goredis.UniversalClient
	switch {
	case sentinel && cluster:
		return nil, opts, bad("master_name and cluster exclude each other", nil)
	case sentinel:
		o, err := goredis.ParseFailoverURL(single)
		if err != nil {
			return nil, opts, bad("invalid Sentinel URL", err)
		}
		o.ContextTimeoutEnabled = ctxTimeout
		c = goredis.NewFailoverClient(o)
	case cluster:
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return nil, opts, bad("a Cluster has only database 0", nil)
		}
		one.Path = ""
		o, err := goredis.ParseClusterURL(one.String())
		if err != nil {
			return nil, opts, bad("invalid Cluster URL", err)
		}
		o.ContextTimeoutEnabled = ctxTimeout
		c = goredis.NewClusterClient(o)
	default:
		o, err := goredis.ParseURL(single)
		if err != nil {
			return nil, opts, bad("invalid URL", err)
		}
		o.ContextTimeoutEnabled = ctxTimeout
		c = goredis.NewClient(o)
	}
	return c, opts, nil
}

func boolParam(q url.Values, name string, def bool) (bool, error) {
	if !q.Has(name) {
		return def, nil
	}
	s := q.Get(name)
	q.Del(name)
	if s == "" {
		return true, nil // "?cluster" alone reads as a flag
	}
	return strconv.ParseBool(s)
}

// leaksSecret reports whether msg repeats the URL's password or a query
// value long enough to be one. go-redis's parse errors can quote the value
// they failed on, and a value under a misspelt name is not masked by its
// name; dropping the detail is cheaper than revoking a leaked password.
// Short values ("true", "3s") are not secrets and keep the detail.
func leaksSecret(msg string, u *url.URL) bool {
	if p, ok := u.User.Password(); ok && p != "" && strings.Contains(msg, p) {
		return true
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 8 && strings.Contains(msg, v) {
				return true
			}
		}
	}
	return false
}
