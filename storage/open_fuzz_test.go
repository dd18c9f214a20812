package storage_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// FuzzOpenUnknownScheme: store URL parsing in Open never panics, and its
// errors are typed; only schemes no adapter registers are used, so nothing
// is opened.
func FuzzOpenUnknownScheme(f *testing.F) {
	for _, s := range []string{"nosuch://u:pw@h/x", "://", "", "a b://c", "x:%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if u, err := url.Parse(raw); err == nil && u.Scheme != "" && registered(u.Scheme) {
			return
		}
		_, err := storage.Open(context.Background(), raw)
		if !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("Open(%q) = %v, want ErrInvalid", raw, err)
		}
	})
}

func registered(scheme string) bool {
	for _, s := range driver.Schemes() {
		if s == scheme {
			return true
		}
	}
	return false
}
