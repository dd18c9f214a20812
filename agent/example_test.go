package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/tokencache/tokencache/agent"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// An agent on a Unix socket, and a Go client reading a token from it. In
// production "tokencache serve" runs the agent; the client part is what a
// program in any language does (see the package documentation for curl,
// Python and Node).
func Example() {
	ctx := context.Background()
	// A token server and a store holding one profile, for the example.
	idp := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer idp.Close()
	idp.AddClient("my-client", "my-secret")
	st, err := storage.Open(ctx, "memory://agent-example")
	if err != nil {
		log.Fatal(err)
	}
	st.Replace(ctx, nil, "", &storage.Record{Profile: "default", ClientID: "my-client", ClientSecret: "my-secret",
		RefreshToken: secret.Secret(idp.IssueRefreshToken("my-client")), TokenURL: idp.TokenURL()})

	// The agent.
	profiles, err := credentials.NewProfiles(credentials.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	h, err := agent.New(agent.Config{Profiles: profiles, Allow: []string{"default"}})
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "agent-example-")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	l, err := agent.ListenUnix(sock)
	if err != nil {
		log.Fatal(err)
	}
	srv := agent.NewServer(h, 0, nil)
	go srv.Serve(l)
	defer func() {
		srv.Shutdown(ctx)
		h.Close()
		// The Profiles is ours: its Close is the last write of a rotated
		// refresh token a store outage held back.
		if err := profiles.Close(); err != nil {
			log.Print(err) // a rotated refresh token only in the recovery journal
		}
		st.Close() // opened here, closed here: after everything that uses it
	}()

	// A client.
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	req, _ := http.NewRequest("GET", "http://localhost/v1/token/default", nil)
	req.Header.Set(agent.HeaderName, "1")
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	fmt.Println(resp.Status, tok.TokenType, idp.Valid(tok.AccessToken), tok.ExpiresIn > 3000)
	// Output: 200 OK Bearer true true
}
