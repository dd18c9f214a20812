package driver

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/tokencache/tokencache/secret"
)

// OpenFunc opens an adapter from a parsed store URL. The adapter it returns
// owns whatever it made from the URL (a client, a connection pool, a
// file): its Close releases them.
type OpenFunc func(ctx context.Context, u *url.URL) (Adapter, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes a URL scheme available to Open and storage.Open. Adapter
// packages call it from init, so importing a package (even as _) is enough
// to use its URLs. Registering a nil OpenFunc, or a scheme twice, panics,
// as database/sql.Register does.
func Register(scheme string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if open == nil {
		panic("storage/driver: Register of a nil OpenFunc for scheme " + scheme)
	}
	if _, dup := registry[scheme]; dup {
		panic("storage/driver: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s := make([]string, 0, len(registry))
	for k := range registry {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Open opens the adapter that rawURL names by its scheme, for a wrapper
// that stores through another adapter (storage/kms's kms+<scheme> URLs) or
// a test that needs the adapter itself; everyone else uses storage.Open.
func Open(ctx context.Context, rawURL string) (Adapter, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		// url.Parse's error repeats the URL, password and all.
		return nil, Wrap(ErrInvalid, fmt.Sprintf("store URL %q is not a URL with a scheme", secret.RedactURL(rawURL)), nil)
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		return nil, Wrap(ErrInvalid, fmt.Sprintf("store URL %q: unknown scheme %q (registered: %s)",
			secret.RedactURL(rawURL), u.Scheme, strings.Join(Schemes(), ", ")), nil)
	}
	return open(ctx, u)
}
