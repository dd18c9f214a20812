package resolver_test

import (
	"fmt"

	"github.com/tokencache/tokencache/resolver"
)

// Explicit values win; with none, any of the named variables selects the
// environment; with none of those, the stored profile.
func ExampleResolve() {
	appEnv := resolver.EnvNames{ClientID: "APP_CLIENT_ID", ClientSecret: "APP_CLIENT_SECRET", RefreshToken: "APP_REFRESH_TOKEN", AccessToken: "APP_ACCESS_TOKEN"}
	env := map[string]string{"APP_CLIENT_ID": "from-env", "APP_REFRESH_TOKEN": "rt"}
	getenv := func(k string) string { return env[k] }

	fmt.Println(resolver.Resolve(resolver.Options{Env: appEnv, Getenv: getenv}).Source)
	fmt.Println(resolver.Resolve(resolver.Options{ClientID: "explicit", Env: appEnv, Getenv: getenv}).Source)
	fmt.Println(resolver.Resolve(resolver.Options{Env: appEnv, Getenv: func(string) string { return "" }}).Source)
	// Output:
	// environment
	// explicit
	// store
}
