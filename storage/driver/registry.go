package driver

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/tokencache/tokencache/internal/registry"
	"github.com/tokencache/tokencache/secret"
)

// OpenFunc opens an adapter from a parsed store URL. The adapter it returns
// owns whatever it made from the URL (a client, a connection pool, a
// file): its Close releases them.
type OpenFunc func(ctx context.Context, u *url.URL) (Adapter, error)

var schemes = registry.New[OpenFunc]("storage/driver: Register")

// Register makes a URL scheme available to Open and storage.Open. Adapter
// packages call it from init, so importing a package (even as _) is enough
// to use its URLs. Registering a nil OpenFunc, or a scheme twice, panics,
// as database/sql.Register does.
func Register(scheme string, open OpenFunc) { schemes.Add(scheme, open) }

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string { return schemes.Names() }

// Open opens the adapter that rawURL names by its scheme, for a wrapper
// that stores through another adapter (storage/kms's kms+<scheme> URLs) or
// a test that needs the adapter itself; everyone else uses storage.Open.
func Open(ctx context.Context, rawURL string) (Adapter, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		// url.Parse's error repeats the URL, password and all.
		return nil, Wrap(ErrInvalid, fmt.Sprintf("store URL %q is not a URL with a scheme", secret.RedactURL(rawURL)), nil)
	}
	open, ok := schemes.Lookup(u.Scheme)
	if !ok {
		return nil, Wrap(ErrInvalid, fmt.Sprintf("store URL %q: unknown scheme %q (registered: %s)",
			secret.RedactURL(rawURL), u.Scheme, strings.Join(Schemes(), ", ")), nil)
	}
	return open(ctx, u)
}
