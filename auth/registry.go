package auth

import (
	"fmt"

	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/internal/registry"
)

// Factory makes an httpauth.Authorizer from a scheme's options. It reports bad
// options as *OptionError.
type Factory func(p Params, env Env) (httpauth.Authorizer, error)

var factories = registry.New[Factory]("auth: Register")

// Register makes a scheme available to New under name, as SL1's
// @add_auth does. Registering a nil Factory, or a name twice, panics, as
// database/sql.Register does: two packages claiming one name is a build
// mistake.
func Register(name string, f Factory) { factories.Add(name, f) }

// New returns the httpauth.Authorizer of the scheme called name, configured by p.
// Authorizers that hold background work or a store of their own implement
// io.Closer; close them when done.
func New(name string, p Params, env Env) (httpauth.Authorizer, error) {
	f, ok := factories.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownScheme, name)
	}
	return f(p, env)
}

// Schemes returns the registered scheme names, sorted.
func Schemes() []string { return factories.Names() }

// registerConfig registers a scheme whose options decode into a Config
// struct C before build validates them.
func registerConfig[C any, A httpauth.Authorizer](name string, build func(C, Env) (A, error)) {
	Register(name, func(p Params, env Env) (httpauth.Authorizer, error) {
		var c C
		if err := decodeParams(name, p, &c); err != nil {
			return nil, err
		}
		a, err := build(c, env)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return a, nil
	})
}
