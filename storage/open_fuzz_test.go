package storage_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/storage"
)

// FuzzRedact: no panic, and a URL's password never survives redaction.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"redis://u:pw@h:1/0", "mongodb://h/db?password=x", "file:///a/b", "::", "redis://%zz", "kms+redis://h?kms_key_id=k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := storage.Redact(raw)
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			return
		}
		if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(out, pw) && !strings.Contains(storage.Redact(out), "*****") {
			t.Fatalf("Redact(%q) = %q keeps the password", raw, out)
		}
	})
}

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
	for _, s := range storage.Schemes() {
		if s == scheme {
			return true
		}
	}
	return false
}
