package resolver_test

import (
	"fmt"

	"github.com/tokencache/tokencache/resolver"
)

// Explicit values win; with none, any PAN_* variable selects the
// environment; with none of those, the stored profile.
func ExampleResolve() {
	env := map[string]string{"PAN_CLIENT_ID": "from-env", "PAN_REFRESH_TOKEN": "rt"}
	getenv := func(k string) string { return env[k] }

	fmt.Println(resolver.Resolve(resolver.Options{Getenv: getenv}).Source)
	fmt.Println(resolver.Resolve(resolver.Options{ClientID: "explicit", Getenv: getenv}).Source)
	fmt.Println(resolver.Resolve(resolver.Options{Getenv: func(string) string { return "" }}).Source)
	// Output:
	// environment
	// explicit
	// store
}
