package auth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
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

// TestReview5GrantSecretsNotInSpans: a token endpoint that echoes what it
// was sent in its error_description (some do: "bad client_secret ...")
// must not put the password or client secret of a grant-based scheme into
// the span that records the failed call, nor into the error the caller
// gets. Credentials scrub a record's own secrets from recorded errors, but
// a Grant's (the password, the client secret of a password or cognito_srp
// scheme) live in the scheme, not the record.
func TestReview5GrantSecretsNotInSpans(t *testing.T) {
	const password, clientSecret = "pw-Review5-9f3a", "cs-Review5-7b1c"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, cs, _ := r.BasicAuth()
		io.WriteString(w, `{"error":"invalid_grant","error_description":"user `+r.PostForm.Get("username")+
			` password `+r.PostForm.Get("password")+` secret `+cs+r.PostForm.Get("client_secret")+` refused"}`)
	}))
	t.Cleanup(srv.Close)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	a, err := auth.New("oauth2_password", auth.Params{"token_url": srv.URL, "client_id": "cid", "client_secret": clientSecret,
		"username": "alice", "password": password}, auth.Env{Credentials: credentials.Config{TracerProvider: tp}})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	req, _ := http.NewRequest("GET", "http://api.example/x", nil)
	err = a.Authorize(t.Context(), req)
	if err == nil {
		t.Fatal("a refused login authorized the request")
	}
	for _, s := range []string{password, clientSecret} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error carries a secret: %v", err)
		}
	}
	spans := rec.Ended()
	if len(spans) == 0 {
		t.Fatal("no span recorded")
	}
	for _, sp := range spans {
		texts := []string{sp.Status().Description}
		for _, kv := range sp.Attributes() {
			texts = append(texts, kv.Value.String())
		}
		for _, ev := range sp.Events() {
			for _, kv := range ev.Attributes {
				texts = append(texts, kv.Value.String())
			}
		}
		for _, txt := range texts {
			for _, s := range []string{password, clientSecret} {
				if strings.Contains(txt, s) {
					t.Errorf("span %q records a secret: %q", sp.Name(), txt)
				}
			}
		}
	}
}
