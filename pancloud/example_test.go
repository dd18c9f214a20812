package pancloud_test

import (
	"context"
	"fmt"
	"log"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/pancloud"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// A developer token, as PAN_DEVELOPER_TOKEN gives it, on a store that
// holds nothing yet: the first Token redeems it and creates the profile,
// which keeps only the access token.
func ExampleOpen() {
	ctx := context.Background()
	api := oauthtest.NewServer(oauthtest.Options{}) // stands in for API Explorer
	defer api.Close()
	env := map[string]string{
		pancloud.EnvDeveloperToken:         api.IssueDeveloperToken(),
		pancloud.EnvDeveloperTokenProvider: api.DeveloperTokenURL(),
	}

	st := storage.NewStore(memory.New(nil))
	defer st.Close() // the store is the caller's
	c, err := pancloud.Open(ctx, pancloud.Config{
		Config: credentials.Config{Store: st, JournalDir: "-"},
		Getenv: func(k string) string { return env[k] },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	tok, err := c.Token(ctx)
	if err != nil {
		log.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "default")
	fmt.Println("valid:", api.Valid(tok.AccessToken.Reveal()))
	fmt.Println("stored access token:", rec.AccessToken == tok.AccessToken, "refresh token:", rec.RefreshToken != "")
	// Output:
	// valid: true
	// stored access token: true refresh token: false
}
