package registry_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/internal/registry"
)

func TestRegistry(t *testing.T) {
	r := registry.New[func() int]("test: Register")
	r.Add("b", func() int { return 2 })
	r.Add("a", func() int { return 1 })
	if f, ok := r.Lookup("b"); !ok || f() != 2 {
		t.Fatalf("Lookup(b): found %v", ok)
	}
	if _, ok := r.Lookup("c"); ok {
		t.Fatal("Lookup(c) found an entry nobody registered")
	}
	if got := r.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Names() = %v", got)
	}
}

func TestRegistryPanics(t *testing.T) {
	type iface interface{ M() }
	for name, add := range map[string]func(){
		"nil func":      func() { registry.New[func()]("test: Register").Add("x", nil) },
		"nil interface": func() { registry.New[iface]("test: Register").Add("x", nil) },
		"twice": func() {
			r := registry.New[func()]("test: Register")
			r.Add("x", func() {})
			r.Add("x", func() {})
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "test: Register ") || !strings.HasSuffix(msg, " x") {
					t.Fatalf("panic %q, want one naming test: Register and x", msg)
				}
			}()
			add()
		})
	}
}
