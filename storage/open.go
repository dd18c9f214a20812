package storage

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
)

// OpenFunc opens an adapter from a parsed store URL.
type OpenFunc func(ctx context.Context, u *url.URL) (Adapter, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes a URL scheme available to Open. Adapter packages call it
// from init, so importing a package (even as _) is enough to use its URLs.
// Registering a scheme twice panics, as database/sql.Register does.
func Register(scheme string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if open == nil {
		panic("storage: Register of a nil OpenFunc for scheme " + scheme)
	}
	if _, dup := registry[scheme]; dup {
		panic("storage: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return sortedKeys(registry)
}

// OpenAdapter opens the adapter that rawURL names by its scheme.
func OpenAdapter(ctx context.Context, rawURL string) (Adapter, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		// url.Parse's error repeats the URL, password and all.
		return nil, Wrap(ErrInvalid, fmt.Sprintf("store URL %q is not a URL with a scheme", Redact(rawURL)), nil)
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		return nil, Wrap(ErrInvalid, fmt.Sprintf("store URL %q: unknown scheme %q (registered: %s)",
			Redact(rawURL), u.Scheme, strings.Join(Schemes(), ", ")), nil)
	}
	return open(ctx, u)
}

// Open opens the Store that rawURL names, such as "file:///path/creds.json",
// "sqlite:///path/tokens.db" or "redis://host:6379/0". The scheme's adapter
// package must be imported.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	a, err := OpenAdapter(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	name := Redact(rawURL)
	if n, ok := a.(Namer); ok {
		name = n.StoreName()
	}
	return NewNamedStore(name, a), nil
}
