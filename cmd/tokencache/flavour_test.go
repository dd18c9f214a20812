package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tokencache/tokencache/oauthtest"
)

// Seed: "Export a PAN_DEVELOPER_TOKEN environment variable ... From this
// point forward, your Credentials object should be capable of obtaining
// and refreshing an access_token", and credentials.json "only stores and
// updates the access_token value when using a developer_token". The CLI
// reads the variables as the library does: on a store that does not
// exist yet, token obtains one and creates the profile.
func TestDeveloperTokenOnEmptyStore(t *testing.T) {
	s := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(s.Close)
	path := filepath.Join(t.TempDir(), "pancloud", "credentials.json")
	dev := s.IssueDeveloperToken()
	env := []string{"PAN_DEVELOPER_TOKEN=" + dev, "PAN_DEVELOPER_TOKEN_PROVIDER=" + s.DeveloperTokenURL(), "PAN_CREDENTIALS_DBFILE=" + path}
	first := strings.TrimSpace(cli(t, env, "token").mustSucceed(t).stdout)
	if !s.Valid(first) {
		t.Fatalf("token printed %q, not a valid token", first)
	}
	if again := strings.TrimSpace(cli(t, env, "token").mustSucceed(t).stdout); again != first || s.Stats().TokenCalls != 1 {
		t.Fatalf("a second token call did not reuse the stored token (%d redemptions)", s.Stats().TokenCalls)
	}
	refreshed := cli(t, env, "refresh").mustSucceed(t)
	if s.Stats().TokenCalls != 2 {
		t.Fatalf("refresh made %d redemptions in all, want 2: %s", s.Stats().TokenCalls, refreshed.stderr)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), dev) || strings.Contains(string(raw), "refresh_token\": \"") {
		t.Fatalf("credentials.json holds more than the access token: %s", raw)
	}
	var doc struct {
		Profiles map[string]map[string]any `json:"profiles"`
	}
	json.Unmarshal(raw, &doc)
	for _, p := range doc.Profiles {
		if tok, _ := p["access_token"].(string); tok == first || !s.Valid(tok) {
			t.Fatalf("credentials.json does not hold the refreshed access token")
		}
	}
}

// init --scheme builds a registered scheme through the auth registry:
// here the client-credentials grant (service to service, no refresh
// token). init obtains the first token; 8 concurrent token processes then
// share it; the profile stores no refresh token.
func TestInitClientCredentialsScheme(t *testing.T) {
	p := newIDP(t, oauthtest.Options{})
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	secretFile := filepath.Join(dir, "secret.txt")
	os.WriteFile(secretFile, []byte(p.secret+"\n"), 0o600)
	r := cli(t, nil, "--store", store, "init", "svc", "--scheme", "oauth2_client_credentials",
		"--token-url", p.TokenURL(), "--client-id", p.clientID, "--client-secret-file", secretFile, "--scope", "read").mustSucceed(t)
	if !strings.Contains(r.stdout, "scheme oauth2_client_credentials") || p.Stats().TokenCalls != 1 {
		t.Fatalf("init said %q after %d token calls", r.stdout, p.Stats().TokenCalls)
	}
	var wg sync.WaitGroup
	out := make([]result, 8)
	for i := range out {
		wg.Go(func() { out[i] = cli(t, nil, "--store", store, "token", "svc") })
	}
	wg.Wait()
	for _, o := range out {
		if o.code != 0 || !p.Valid(strings.TrimSpace(o.stdout)) {
			t.Fatalf("token: exit %d, stderr %s", o.code, o.stderr)
		}
	}
	if n := p.Stats().TokenCalls; n != 1 {
		t.Fatalf("%d token calls; the stored token was not shared", n)
	}
	rec := loadRecord(t, store, "svc")
	if rec.RefreshToken != "" || rec.Scheme != "oauth2_client_credentials" || rec.ClientID != p.clientID {
		t.Fatalf("stored %q scheme, client %q, a refresh token: %v", rec.Scheme, rec.ClientID, rec.RefreshToken != "")
	}
	// A forced refresh requests a new token with the client's own
	// credentials.
	cli(t, nil, "--store", store, "refresh", "svc").mustSucceed(t)
	if n := p.Stats().TokenCalls; n != 2 {
		t.Fatalf("refresh: %d token calls, want 2", n)
	}
	// The same init again changes nothing and calls nobody.
	again := cli(t, nil, "--store", store, "init", "svc", "--scheme", "oauth2_client_credentials",
		"--token-url", p.TokenURL(), "--client-id", p.clientID, "--client-secret-file", secretFile, "--scope", "read").mustSucceed(t)
	if !strings.Contains(again.stdout, "nothing changed") || p.Stats().TokenCalls != 2 {
		t.Fatalf("init again said %q", again.stdout)
	}
}

// init --scheme refuses what it cannot build, by name and without quoting
// secrets, and does not replace another profile's grant without --force.
func TestInitSchemeRefusals(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"init", "--scheme", "no_such_scheme"}, "oauth2_client_credentials"},
		{[]string{"init", "--scheme", "oauth2_client_credentials", "--param", "client_secert=hidden-value"}, "client_secert"},
		{[]string{"init", "--scheme", "api_key", "--refresh-token", "hidden-value"}, "--refresh-token"},
		{[]string{"init", "--param", "key=hidden-value"}, "--scheme"},
	} {
		r := cli(t, nil, append([]string{"--store", store}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "hidden-value") {
			t.Errorf("%v: exit %d, stderr %q; want usage naming %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	seed := p.initExpired(t, store, "default")
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("api-key-value"), 0o600)
	if r := cli(t, nil, "--store", store, "init", "--scheme", "api_key", "--param-file", "key="+keyFile); r.code != exitUsage || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("init --scheme over a refresh-token profile: exit %d, stderr %q", r.code, r.stderr)
	}
	cli(t, nil, "--store", store, "init", "--scheme", "api_key", "--param-file", "key="+keyFile, "--force").mustSucceed(t)
	if r := cli(t, nil, "--store", store, "token"); r.code != exitUsage || !strings.Contains(r.stderr, "no token") {
		t.Fatalf("token of an api_key profile: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cli(t, nil, "--store", store, "show").mustSucceed(t); strings.Contains(r.stdout, "api-key-value") {
		t.Fatalf("show prints the API key: %s", r.stdout)
	}
	// The replaced profile keeps its lineage: the refresh token it held is
	// not taken back, even with --force.
	if r := cli(t, []string{"PAN_REFRESH_TOKEN=" + seed}, "--store", store, "init", "--force"); r.code != exitUsage || !strings.Contains(r.stderr, "spent") {
		t.Fatalf("init with the replaced profile's refresh token: exit %d, stderr %q", r.code, r.stderr)
	}
}
