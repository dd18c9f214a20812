package memcached

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

func init() {
	driver.Register("memcached", OpenURL)
}

// defaultMaxIdle is well above gomemcache's 2: with fewer idle connections
// than concurrent callers every burst dials anew.
const defaultMaxIdle = 16

// OpenURL makes the gomemcache client a memcached:// URL describes (see
// the package documentation) and an Adapter over it, which owns it: Close
// closes the client. It is the opener the package registers for
// "memcached".
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

// newClientFromURL makes the gomemcache client a memcached:// URL
// describes and the Options its prefix parameter sets.
func newClientFromURL(u *url.URL) (*memcache.Client, Options, error) {
	var opts Options
	bare := *u
	bare.User, bare.RawQuery, bare.Fragment = nil, "", ""
	bad := func(why string) error {
		return driver.Wrap(driver.ErrInvalid, fmt.Sprintf("memcached: store URL %q: %s", secret.RedactURL(bare.String()), why), nil)
	}
	if u.User != nil {
		return nil, opts, bad("memcached takes no user or password")
	}
	if u.Host == "" {
		return nil, opts, bad("no server address")
	}
	var servers []string
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return nil, opts, bad("empty server address")
		}
		if !strings.Contains(h, ":") || strings.HasSuffix(h, "]") {
			h += ":11211"
		}
		servers = append(servers, h)
	}
	q := u.Query()
	timeout := time.Duration(0)
	maxIdle := defaultMaxIdle
	for k := range q {
		v := q.Get(k)
		switch k {
		case "prefix":
			opts.Prefix = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, opts, bad("timeout must be a positive duration such as 500ms")
			}
			timeout = d
		case "max_idle_conns":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, opts, bad("max_idle_conns must be a positive integer")
			}
			maxIdle = n
		default:
			return nil, opts, bad("unknown parameter " + strconv.Quote(k))
		}
	}
	ss := new(memcache.ServerList)
	if err := ss.SetServers(servers...); err != nil {
		return nil, opts, bad("cannot resolve the server addresses")
	}
	c := memcache.NewFromSelector(ss)
	c.Timeout = timeout
	c.MaxIdleConns = maxIdle
	return c, opts, nil
}
