package driver

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/tokencache/tokencache/internal/registry"
	"github.com/tokencache/tokencache/secret"
)

// openFunc opens an adapter from a parsed store URL.
type openFunc func(ctx context.Context, u *url.URL) (Adapter, error)

var schemes = registry.New[openFunc]("storage/driver: Register")

// Register makes a URL scheme available to Open and storage.Open: open
// makes an adapter from a parsed URL of the scheme, and that adapter owns
// whatever open made from the URL (a client, a connection pool, a file):
// its Close releases them. Adapter packages call Register from init with
// their OpenURL, so importing a package (even as _) is enough to use its
// URLs. open may return the package's concrete adapter type: a nil one
// that comes with an error reaches no caller as a non-nil Adapter.
// Registering a nil open, or a scheme twice, panics, as
// database/sql.Register does.
func Register[A Adapter](scheme string, open func(ctx context.Context, u *url.URL) (A, error)) {
	var f openFunc
	if open != nil {
		f = func(ctx context.Context, u *url.URL) (Adapter, error) {
			a, err := open(ctx, u)
			if err != nil {
				return nil, err
			}
			return a, nil
		}
	}
	schemes.Add(scheme, f)
}

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
