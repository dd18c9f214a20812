package pancloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/pancloud"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/file"
	"github.com/tokencache/tokencache/storage/memory"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// recorder is an http.Client whose requests to the real test server are
// noted (path, content type), to show the wire format a flavor chose.
type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.URL.Path+" "+req.Header.Get("Content-Type"))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

func newFileStore(t *testing.T) (*storage.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "credentials.json")
	st, err := storage.Open(context.Background(), "file://"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

// "Export a PAN_DEVELOPER_TOKEN environment variable ... From this point
// forward, your Credentials object should be capable of obtaining and
// refreshing an access_token using API Explorer's built-in token
// redemption service." On an empty store: the profile is created.
func TestDeveloperTokenFromEnvOnEmptyStore(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(srv.Close)
	st, _ := newFileStore(t)
	vars := map[string]string{pancloud.EnvDeveloperToken: srv.IssueDeveloperToken(), pancloud.EnvDeveloperTokenProvider: srv.DeveloperTokenURL()}
	c, err := pancloud.Open(ctx, pancloud.Config{Config: credentials.Config{Store: st, JournalDir: "-"}, Getenv: env(vars)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok, err := c.Token(ctx)
	if err != nil || !srv.Valid(tok.AccessToken.Reveal()) {
		t.Fatalf("obtaining with a developer token on an empty store: %v", err)
	}
	again, err := c.Refresh(ctx, tok)
	if err != nil || again.AccessToken == tok.AccessToken || !srv.Valid(again.AccessToken.Reveal()) {
		t.Fatalf("refreshing with a developer token: %v", err)
	}
	if n := srv.Stats().TokenCalls; n != 2 {
		t.Fatalf("%d redemption calls, want 2", n)
	}
	// A second process with the same environment adopts the stored token.
	c2, err := pancloud.Open(ctx, pancloud.Config{Config: credentials.Config{Store: st, JournalDir: "-"}, Getenv: env(vars)})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if t2, err := c2.Token(ctx); err != nil || t2.AccessToken != again.AccessToken || srv.Stats().TokenCalls != 2 {
		t.Fatalf("a second Credentials did not adopt the stored token: %v", err)
	}
}

// "You may notice that your credentials.json file only stores and updates
// the access_token value when using a developer_token. This is by design,
// as API Explorer, acting as the token redemption service, is responsible
// for storing the additional credentials needed to perform an
// access_token refresh." Even a service that also returns a refresh token
// gets only its access token stored, and the developer token itself is
// never written.
func TestDeveloperTokenStoresOnlyAccessToken(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(srv.Close)
	// The real redemption endpoint, its answer given a refresh_token member.
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		var v map[string]any
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if json.Unmarshal(b, &v) == nil && v["access_token"] != nil {
			v["refresh_token"] = "service-refresh-token"
			b, _ = json.Marshal(v)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)

	st, path := newFileStore(t)
	dev := srv.IssueDeveloperToken()
	c, err := pancloud.Open(ctx, pancloud.Config{Config: credentials.Config{Store: st, Profile: "dev", JournalDir: "-"},
		DeveloperToken: secret.Secret(dev), DeveloperTokenProvider: front.URL + "/api/developer/token", Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Refresh(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Profiles map[string]map[string]any `json:"profiles"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	for _, p := range doc.Profiles {
		if p["profile"] == "dev" {
			rec = p
		}
	}
	if rec == nil || rec["access_token"] != second.AccessToken.Reveal() {
		t.Fatalf("credentials.json does not hold the updated access token: %s", raw)
	}
	for _, k := range []string{"refresh_token", "client_secret", "client_id"} {
		if v, ok := rec[k]; ok && v != "" {
			t.Errorf("credentials.json stores %s with a developer token: %v", k, v)
		}
	}
	if strings.Contains(string(raw), dev) || strings.Contains(string(raw), "service-refresh-token") {
		t.Fatal("credentials.json holds the developer token or the service's refresh token")
	}
}

// "pancloud will auto-refresh and apply the access_token to the
// "Authorization: Bearer" header under the following conditions:
// auto_refresh is set to True. access_token is None. exp field in
// access_token is expired." ManualRefresh is auto_refresh=False: an
// expired token is not refreshed until asked; by default it is.
func TestAutoRefresh(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("app", "app-secret")
	for _, manual := range []bool{true, false} {
		st := storage.NewStore(memory.New(nil))
		vars := map[string]string{pancloud.EnvClientID: "app", pancloud.EnvClientSecret: "app-secret",
			pancloud.EnvRefreshToken: srv.IssueRefreshToken("app"), pancloud.EnvAccessToken: "expired-access"}
		srv.ResetStats()
		c, err := pancloud.Open(ctx, pancloud.Config{Config: credentials.Config{Store: st, JournalDir: "-", ManualRefresh: manual},
			BaseURL: srv.URL, Getenv: env(vars)})
		if err != nil {
			t.Fatal(err)
		}
		// The seeded access token has no known expiry and is no JWT: mark
		// it expired, as its exp claim would.
		st.Update(ctx, "default", func(r *storage.Record) error { r.Expiry = time.Now().Add(-time.Minute); return nil })
		tok, err := c.Token(ctx)
		switch {
		case manual && (!errors.Is(err, credentials.ErrRefreshRequired) || srv.Stats().RefreshCalls != 0):
			t.Fatalf("auto_refresh off: Token = %v after %d refreshes; want ErrRefreshRequired and none", err, srv.Stats().RefreshCalls)
		case !manual && (err != nil || !srv.Valid(tok.AccessToken.Reveal()) || srv.Stats().RefreshCalls != 1):
			t.Fatalf("auto_refresh on: Token = %v after %d refreshes; want a fresh token after one", err, srv.Stats().RefreshCalls)
		}
		if manual {
			fresh, err := c.Refresh(ctx, nil)
			if err != nil || !srv.Valid(fresh.AccessToken.Reveal()) {
				t.Fatalf("auto_refresh off: an explicit Refresh: %v", err)
			}
			if tok, err := c.Token(ctx); err != nil || tok != fresh || srv.Stats().RefreshCalls != 1 {
				t.Fatalf("auto_refresh off: Token after Refresh = %v (%d refreshes)", err, srv.Stats().RefreshCalls)
			}
		}
		c.Close()
	}
}

// The seed's list: "Exchanging and authorization code for tokens
// (authorization code grant)", "Refreshing tokens", "Revoking tokens":
// all three in pancloud's JSON bodies at {base}/api/oauth2/...
func TestExchangeRefreshRevokeInJSON(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("app", "app-secret")
	st := storage.NewStore(memory.New(nil))
	if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error {
		r.ClientID, r.ClientSecret, r.TokenURL, r.Flavor = "app", "app-secret", srv.URL, pancloud.Flavor
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", JournalDir: "-", HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const redirect = "http://127.0.0.1:1/callback"
	ar, err := credentials.NewAuthRequest(srv.AuthorizeURL(), "app", redirect)
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(ar.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	tok, err := c.Exchange(ctx, loc.Query().Get("code"), ar.Verifier, redirect)
	if err != nil || !srv.Valid(tok.AccessToken.Reveal()) {
		t.Fatalf("exchange: %v", err)
	}
	next, err := c.Refresh(ctx, tok)
	if err != nil || !srv.Valid(next.AccessToken.Reveal()) || srv.Stats().RefreshCalls != 1 {
		t.Fatalf("refresh: %v", err)
	}
	stored, _, _ := st.Load(ctx, "p")
	if err := c.Revoke(ctx, ""); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if srv.ValidRefresh(stored.RefreshToken.Reveal()) || srv.Valid(next.AccessToken.Reveal()) {
		t.Fatal("tokens still valid after revoke")
	}
	want := []string{
		"/api/oauth2/RequestToken application/json", // exchange
		"/api/oauth2/RequestToken application/json", // refresh
		"/api/oauth2/RevokeToken application/json",  // refresh token
		"/api/oauth2/RevokeToken application/json",  // access token
	}
	if got := rec.seen(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// pancloud's endpoint knows only confidential clients: a profile without
// a secret is a PartialCredentialsError naming it, and nothing is sent.
func TestMissingClientSecret(t *testing.T) {
	ctx := context.Background()
	st := storage.NewStore(memory.New(nil))
	st.Update(ctx, "p", func(r *storage.Record) error {
		r.ClientID, r.TokenURL, r.Flavor = "app", "http://127.0.0.1:1", pancloud.Flavor
		r.Seed("rt")
		return nil
	})
	c, _ := credentials.New(credentials.Config{Store: st, Profile: "p", JournalDir: "-"})
	defer c.Close()
	_, err := c.Token(ctx)
	var pe *credentials.PartialCredentialsError
	if !errors.As(err, &pe) || strings.Join(pe.Missing, ",") != "client_secret" {
		t.Fatalf("got %v; want missing client_secret", err)
	}
}

// "Credentials stored as environment variables: PAN_REFRESH_TOKEN,
// PAN_CLIENT_ID, PAN_CLIENT_SECRET" and "The resolution performs a
// top-down, first match evaluation": explicit values hide the
// environment, and the environment seeds the store's profile.
func TestResolution(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("env-app", "env-secret")
	srv.AddClient("kw-app", "kw-secret")
	st := storage.NewStore(memory.New(nil))
	vars := map[string]string{pancloud.EnvClientID: "env-app", pancloud.EnvClientSecret: "env-secret", pancloud.EnvRefreshToken: srv.IssueRefreshToken("env-app")}

	c, err := pancloud.Open(ctx, pancloud.Config{Config: credentials.Config{Store: st, Profile: "env", JournalDir: "-"}, BaseURL: srv.URL, Getenv: env(vars)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(ctx); err != nil {
		t.Fatalf("environment credentials: %v", err)
	}
	c.Close()
	if rec, _, _ := st.Load(ctx, "env"); rec.ClientID != "env-app" || rec.Flavor != pancloud.Flavor || rec.TokenURL != srv.URL {
		t.Fatalf("the environment seeded %+v", rec)
	}

	c, err = pancloud.Open(ctx, pancloud.Config{Config: credentials.Config{Store: st, Profile: "kw", JournalDir: "-"}, BaseURL: srv.URL, Getenv: env(vars),
		ClientID: "kw-app", ClientSecret: "kw-secret", RefreshToken: secret.Secret(srv.IssueRefreshToken("kw-app"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(ctx); err != nil {
		t.Fatalf("explicit credentials: %v", err)
	}
	c.Close()
	if rec, _, _ := st.Load(ctx, "kw"); rec.ClientID != "kw-app" {
		t.Fatalf("explicit values did not win: %+v", rec)
	}
	// Keywords hide the environment even when they are incomplete.
	opts := pancloud.Config{ClientID: "kw-app", Getenv: env(vars)}.Options()
	if opts.ClientID != "kw-app" || opts.ClientSecret != "" || opts.Env != pancloud.Env() {
		t.Fatalf("options %+v", opts)
	}
}

// "Credentials stored in a credentials file
// (~/.config/pancloud/credentials.json)": the default, PAN_CREDENTIALS_DBFILE
// when set; and the URL of each names its own file, so two apps with
// their own PAN_CREDENTIALS_DBFILE never share recovery journal entries.
func TestDefaultPathAndStoreURL(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if p, err := pancloud.DefaultPath(env(nil)); err != nil || p != filepath.Join(home, ".config", "pancloud", "credentials.json") {
		t.Fatalf("DefaultPath = %q, %v", p, err)
	}
	var names []string
	for _, d := range []string{t.TempDir(), t.TempDir()} {
		vars := map[string]string{pancloud.EnvCredentialsFile: filepath.Join(d, "credentials.json")}
		if p, _ := pancloud.DefaultPath(env(vars)); p != vars[pancloud.EnvCredentialsFile] {
			t.Fatalf("DefaultPath with %s = %q", pancloud.EnvCredentialsFile, p)
		}
		u, err := pancloud.DefaultStoreURL(env(vars))
		if err != nil {
			t.Fatal(err)
		}
		st, err := storage.Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Adapter().(*file.Adapter).Path(); got != vars[pancloud.EnvCredentialsFile] {
			t.Fatalf("%s opens %s", u, got)
		}
		names = append(names, st.Name())
		st.Close()
	}
	if names[0] == names[1] {
		t.Fatalf("two credentials files are both named %q: they would share journal entries", names[0])
	}
	rel, _ := pancloud.DefaultStoreURL(env(map[string]string{pancloud.EnvCredentialsFile: "rel.json"}))
	wd, _ := os.Getwd()
	if rel != "file://"+filepath.Join(wd, "rel.json") {
		t.Fatalf("a relative %s: %s", pancloud.EnvCredentialsFile, rel)
	}
}

// A redirect from pancloud's token endpoint is not followed: the client
// secret and refresh token would go to its target.
func TestRedirectNotFollowed(t *testing.T) {
	var hits int
	var mu sync.Mutex
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	t.Cleanup(evil.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	st := storage.NewStore(memory.New(nil))
	st.Update(context.Background(), "p", func(r *storage.Record) error {
		r.ClientID, r.ClientSecret, r.TokenURL, r.Flavor = "app", "client-secret-value", redirector.URL, pancloud.Flavor
		r.Seed("refresh-token-value")
		return nil
	})
	c, _ := credentials.New(credentials.Config{Store: st, Profile: "p", JournalDir: "-", MaxRetries: -1})
	defer c.Close()
	_, err := c.Token(context.Background())
	if !errors.Is(err, credentials.ErrNotTokenEndpoint) {
		t.Fatalf("got %v; want ErrNotTokenEndpoint", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Fatal("the redirect target was called")
	}
}
