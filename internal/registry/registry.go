// Package registry is the one name-to-implementation registry behind
// driver.Register (store URL schemes), auth.Register (authorization
// schemes) and credentials.RegisterFlavor (token endpoint dialects): a map
// safe for concurrent use that refuses, by panicking as database/sql.Register
// does, a nil entry or a name registered twice, since either is a mistake in
// the program's build, not in its input.
package registry

import (
	"maps"
	"reflect"
	"slices"
	"sync"
)

// Registry maps names to values of type T. Its zero value is not usable;
// make one with New.
type Registry[T any] struct {
	register string // how a panic names the registering function: "auth: Register"
	mu       sync.RWMutex
	m        map[string]T
}

// New returns an empty Registry whose panics name register, the exported
// function that adds to it ("storage/driver: Register").
func New[T any](register string) *Registry[T] {
	return &Registry[T]{register: register, m: map[string]T{}}
}

// Add registers v under name. It panics if v is nil (a nil func, interface
// or pointer) or name is taken.
func (r *Registry[T]) Add(name string, v T) {
	if reflect.ValueOf(&v).Elem().IsZero() {
		panic(r.register + " of a nil value for " + name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(r.register + " called twice for " + name)
	}
	r.m[name] = v
}

// Lookup returns the value registered under name.
func (r *Registry[T]) Lookup(name string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.m[name]
	return v, ok
}

// Names returns the registered names, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.m))
}
