package credentials_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	_ "github.com/tokencache/tokencache/storage/file" // registers file://
)

// The README's quick start, compiled and run as written: a file store,
// the profile created (Profiles.Add is safe to call on every start: a
// refresh token the store has already rotated is not put back), the
// token, its Authorization header, and closing. Only the server, the
// directory and the environment are the example's own.
func Example_quickStart() {
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer srv.Close()
	srv.AddClient("app", "app-secret")
	dir, err := os.MkdirTemp("", "quickstart")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Setenv("CLIENT_SECRET", "app-secret")
	os.Setenv("REFRESH_TOKEN", srv.IssueRefreshToken("app"))
	tokenURL, apiURL := srv.TokenURL(), srv.ResourceURL()

	// --- README quick start from here ---
	ctx := context.Background()
	st, err := storage.Open(ctx, "file://"+filepath.Join(dir, "credentials.json"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close() // whoever opens a store closes it, after its users
	profiles, err := credentials.NewProfiles(credentials.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	defer profiles.Close() // closes every profile's Credentials; runs before st.Close

	// Create the profile (or update it: safe on every start).
	err = profiles.Add(ctx, &storage.Record{
		Profile:      "tenant-42",
		TokenURL:     tokenURL,
		ClientID:     "app",
		ClientSecret: secret.Secret(os.Getenv("CLIENT_SECRET")), // "" for a public client
		RefreshToken: secret.Secret(os.Getenv("REFRESH_TOKEN")),
	})
	if err != nil {
		log.Fatal(err)
	}

	tok, err := profiles.Token(ctx, "tenant-42") // cached; one refresh per expiry across processes
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, apiURL, nil)
	req.Header.Set("Authorization", tok.AuthorizationHeader()) // "Bearer <token>"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	fmt.Println(tok.AccessToken) // a secret.Secret prints masked; tok.AccessToken.Reveal() is the raw value
	// Output:
	// 200 OK
	// *****
}
