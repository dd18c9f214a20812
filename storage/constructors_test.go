package storage_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/dynamodb"
	"github.com/tokencache/tokencache/storage/etcd"
	"github.com/tokencache/tokencache/storage/file"
	"github.com/tokencache/tokencache/storage/kms"
	"github.com/tokencache/tokencache/storage/memcached"
	"github.com/tokencache/tokencache/storage/memory"
	"github.com/tokencache/tokencache/storage/mongo"
	"github.com/tokencache/tokencache/storage/postgres"
	"github.com/tokencache/tokencache/storage/redis"
	"github.com/tokencache/tokencache/storage/sqlite"
)

// The constructor rule of storage/driver, checked for every adapter in the
// module: New over a client refuses a nil one with ErrInvalid (instead of
// panicking on first use), and nil options mean the defaults.
func TestConstructorsRefuseNilClient(t *testing.T) {
	for name, newAdapter := range map[string]func() (isNil bool, err error){
		"redis":     func() (bool, error) { a, err := redis.New(nil, nil); return a == nil, err },
		"memcached": func() (bool, error) { a, err := memcached.New(nil, nil); return a == nil, err },
		"mongo":     func() (bool, error) { a, err := mongo.New(nil, nil); return a == nil, err },
		"postgres":  func() (bool, error) { a, err := postgres.New(nil, nil); return a == nil, err },
		"etcd":      func() (bool, error) { a, err := etcd.New(nil, nil); return a == nil, err },
		"dynamodb":  func() (bool, error) { a, err := dynamodb.New(nil, "tokens", nil); return a == nil, err },
		"kms":       func() (bool, error) { a, err := kms.New(memory.New(nil), nil, "alias/k", nil); return a == nil, err },
	} {
		isNil, err := newAdapter()
		if !errors.Is(err, storage.ErrInvalid) || !isNil {
			t.Errorf("%s.New with a nil client: adapter nil %v, error %v; want nil, ErrInvalid", name, isNil, err)
		}
	}
}

// Adapters that need no client work with nil options, and OpenURL returns
// the concrete type with the package's extras.
func TestConstructorsNilOptions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, err := file.New(dir+"/credentials.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	sq, err := sqlite.Open(ctx, dir+"/tokens.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("file://" + dir + "/other.json")
	fu, err := file.OpenURL(ctx, u)
	if err != nil || fu.Path() != dir+"/other.json" {
		t.Fatalf("file.OpenURL = %v, %v", fu, err)
	}
	for _, a := range []driver.Adapter{memory.New(nil), f, sq, fu} {
		st := storage.NewStore(a)
		if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error { r.ClientID = "c"; return nil }); err != nil {
			t.Errorf("%T: %v", a, err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("%T: close: %v", a, err)
		}
	}
}
