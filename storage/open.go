package storage

import (
	"context"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

// Open opens the Store that rawURL names, such as "file:///path/creds.json",
// "sqlite:///path/tokens.db" or "redis://host:6379/0". The scheme's adapter
// package must be imported (as _ will do); it registered the scheme with
// driver.Register. The Store owns what the URL made, clients and
// connections included: Close releases them.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	a, err := driver.Open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	name := secret.RedactURL(rawURL)
	if n, ok := a.(driver.Namer); ok {
		name = n.StoreName()
	}
	return NewNamedStore(name, a), nil
}
