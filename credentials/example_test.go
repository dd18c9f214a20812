package credentials_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	_ "github.com/tokencache/tokencache/storage/memory"
)

// exampleServer stands in for a real authorization server.
func exampleServer() (*oauthtest.Server, *storage.Record) {
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	srv.AddClient("my-client", "my-secret")
	return srv, &storage.Record{
		Profile: "default", ClientID: "my-client", ClientSecret: "my-secret",
		RefreshToken: secret.Secret(srv.IssueRefreshToken("my-client")), TokenURL: srv.TokenURL(),
	}
}

// Every process that opens the same store and profile shares one access
// token; the first to find it expired refreshes it for all.
func Example() {
	ctx := context.Background()
	srv, profile := exampleServer()
	defer srv.Close()

	st, err := storage.Open(ctx, "memory://example")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Replace(ctx, nil, "", profile); err != nil {
		log.Fatal(err)
	}

	creds, err := credentials.New(credentials.Config{Store: st, Profile: "default"})
	if err != nil {
		log.Fatal(err)
	}
	defer creds.Close()

	tok, err := creds.Token(ctx)
	if err != nil {
		log.Fatal(err)
	}
	again, _ := creds.Token(ctx) // cached: no lock, no allocation
	fmt.Println(tok == again, srv.Valid(tok.AccessToken.Reveal()), tok.AccessToken)
	fmt.Println("refresh calls:", srv.Stats().RefreshCalls)
	// Output:
	// true true *****
	// refresh calls: 1
}

// Client sets the Authorization header on every request and, on a 401,
// refreshes once and retries.
func ExampleCredentials_Client() {
	ctx := context.Background()
	srv, profile := exampleServer()
	defer srv.Close()
	st, _ := storage.Open(ctx, "memory://example-client")
	defer st.Close()
	st.Replace(ctx, nil, "", profile)
	creds, _ := credentials.New(credentials.Config{Store: st})
	defer creds.Close()

	resp, err := creds.Client().Get(srv.ResourceURL())
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// Profiles serves many tenants from one store, one shared Credentials each.
func ExampleProfiles() {
	ctx := context.Background()
	srv, _ := exampleServer()
	defer srv.Close()
	st, _ := storage.Open(ctx, "memory://example-profiles")
	defer st.Close() // the opener closes the store, after the Profiles
	tenants, err := credentials.NewProfiles(credentials.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	defer tenants.Close() // leaves st open

	for _, name := range []string{"acme", "globex"} {
		err := tenants.Add(ctx, &storage.Record{Profile: name, ClientID: "my-client", ClientSecret: "my-secret",
			RefreshToken: secret.Secret(srv.IssueRefreshToken("my-client")), TokenURL: srv.TokenURL()})
		if err != nil {
			log.Fatal(err)
		}
	}
	for _, name := range []string{"acme", "globex", "acme"} {
		if _, err := tenants.Token(ctx, name); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("refresh calls:", srv.Stats().RefreshCalls)
	// Output: refresh calls: 2
}
