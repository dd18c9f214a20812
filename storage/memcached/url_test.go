package memcached_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
	_ "github.com/tokencache/tokencache/storage/memcached" // registers the scheme
)

func TestOpenURLForms(t *testing.T) {
	cases := []struct {
		url    string
		prefix string
		ok     bool
	}{
		{"memcached://127.0.0.1:11211", "", true},
		{"memcached://127.0.0.1:11211,127.0.0.1:11212/?prefix=tc:&timeout=1s&max_idle_conns=4", "tc:", true},
		{"memcached://localhost/", "", true},
		{"memcached://user:hunter2-secret@127.0.0.1:11211", "", false},
		{"memcached://127.0.0.1:11211/?timeout=soon", "", false},
		{"memcached://127.0.0.1:11211/?pasword=hunter2-secret", "", false},
		{"memcached://127.0.0.1:11211/?prefix=has%20space", "", false},
		{"memcached:///", "", false},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			a, err := driver.Open(context.Background(), c.url)
			if !c.ok {
				if !errors.Is(err, driver.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a.Close()
		})
	}
}
