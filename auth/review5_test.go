package auth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/storage"
)

// review5Thief records every request a redirect sends it.
type review5Thief struct {
	mu   sync.Mutex
	got  []string
	srv  *httptest.Server
	from *httptest.Server
}

func newReview5Thief(t *testing.T) *review5Thief {
	th := &review5Thief{}
	th.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		th.mu.Lock()
		th.got = append(th.got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b))
		th.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"x","token_type":"Bearer","expires_in":3600}`)
	}))
	// The endpoint the grant is configured with answers every call with a
	// 307, which an http.Client follows with the same method and body.
	th.from = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, th.srv.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(th.srv.Close)
	t.Cleanup(th.from.Close)
	return th
}

func (th *review5Thief) check(t *testing.T, err error, secrets ...string) {
	t.Helper()
	th.mu.Lock()
	defer th.mu.Unlock()
	for _, g := range th.got {
		for _, s := range secrets {
			if strings.Contains(g, s) {
				t.Errorf("the redirect target received a secret (%q): %q", s, g)
			}
		}
	}
	if len(th.got) > 0 {
		t.Errorf("the grant followed a redirect: %d request(s) reached the redirect target", len(th.got))
	}
	if err == nil {
		t.Errorf("a redirect answer was taken as success")
	}
}

// TestReview5CognitoGrantOwnClientNoRedirect: CognitoSRPConfig.Grant is
// for "a credentials.Config of your own", with the caller's http.Client.
// A plain http.Client follows a 307 with the same body, so a Cognito
// endpoint that redirects would receive the stored refresh token (and
// SECRET_HASH) at the redirect target. Grant must never follow one, as
// the grants built through auth.New do.
func TestReview5CognitoGrantOwnClientNoRedirect(t *testing.T) {
	th := newReview5Thief(t)
	cfg := auth.CognitoSRPConfig{UserPoolID: "us-east-1_Pool", ClientID: "cid", ClientSecret: "client-secret-value",
		Username: "alice", Password: "alice-password", Endpoint: th.from.URL}
	g, err := cfg.Grant(&http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Obtain(t.Context(), &storage.Record{Profile: "p", RefreshToken: "refresh-token-value"})
	th.check(t, err, "refresh-token-value")
}

// TestReview5TokenEndpointGrantOwnClientNoRedirect: the same for the
// token_endpoint scheme's Grant, which posts a username and password.
func TestReview5TokenEndpointGrantOwnClientNoRedirect(t *testing.T) {
	th := newReview5Thief(t)
	cfg := auth.TokenEndpointConfig{URL: th.from.URL, Method: "POST", Username: "alice", Password: "alice-password"}
	g, err := cfg.Grant(&http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Obtain(t.Context(), &storage.Record{Profile: "p"})
	th.check(t, err, "alice-password")
}

// TestReview5TCGrantOwnClientNoRedirect: the same for tc_token's Grant,
// which sends the ThreatConnect token.
func TestReview5TCGrantOwnClientNoRedirect(t *testing.T) {
	th := newReview5Thief(t)
	cfg := auth.TCTokenConfig{BaseURL: th.from.URL, Token: "tc-token-value"}
	g, err := cfg.Grant(&http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Obtain(t.Context(), &storage.Record{Profile: "p", AccessToken: "tc-token-value"})
	th.check(t, err, "tc-token-value")
}
