package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

func init() {
	driver.Register("postgres", OpenURL)
	driver.Register("postgresql", OpenURL)
}

// OpenURL makes the pgx pool a postgres:// or postgresql:// URL describes
// (see the package documentation) and an Adapter over it, which owns it:
// Close closes the pool. It does not connect; the first call does. It is
// the opener the package registers for "postgres" and "postgresql".
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	cfg, opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	a, err := newAdapter(nil, &opts)
	if err != nil {
		return nil, err
	}
	// NewWithConfig does not connect (MinConns is 0 unless the URL asks
	// for more, and those connect in the background).
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, urlError(u, "pool configuration", err)
	}
	a.pool, a.owned, a.secrets = pool, true, secretsOf(u)
	return a, nil
}

// parseURL returns the pool configuration and Options that a postgres:// or
// postgresql:// URL describes: the table, schema and listen parameters
// become Options, everything else is pgxpool's.
func parseURL(u *url.URL) (*pgxpool.Config, Options, error) {
	q := u.Query()
	opts := Options{Table: q.Get("table"), Schema: q.Get("schema")}
	if q.Has("listen") {
		listen, err := strconv.ParseBool(q.Get("listen"))
		if err != nil {
			return nil, opts, urlError(u, "listen must be true or false", nil)
		}
		opts.NoListen = !listen
	}
	q.Del("table")
	q.Del("schema")
	q.Del("listen")
	rest := *u
	rest.RawQuery = q.Encode()
	rest.Fragment = ""
	cfg, err := pgxpool.ParseConfig(rest.String())
	if err != nil {
		return nil, opts, urlError(u, "invalid URL", err)
	}
	return cfg, opts, nil
}

// urlError reports a bad URL without its query (a secret under a
// misspelt name would escape secret.RedactURL) and without pgx's copy of the
// connection string, which masks the password only on a best-effort basis.
func urlError(u *url.URL, why string, cause error) error {
	bare := *u
	bare.RawQuery, bare.Fragment = "", ""
	msg := fmt.Sprintf("postgres: store URL %q: %s", secret.RedactURL(bare.String()), why)
	var pce *pgconn.ParseConfigError
	if errors.As(cause, &pce) {
		// "cannot parse `CONNSTRING`: why (cause)": keep what follows
		// the connection string.
		s := cause.Error()
		if i := strings.LastIndex(s, "`: "); i >= 0 {
			cause = errors.New(s[i+3:])
		} else {
			cause = nil
		}
	}
	if cause != nil && leaks(cause.Error(), secretsOf(u)) {
		cause = nil
	}
	return driver.Wrap(driver.ErrInvalid, msg, cause)
}
