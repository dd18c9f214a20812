package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// attacker records what reaches it and answers with tokens of its own, as
// a redirect target controlled by someone else would.
type attacker struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string // method, Authorization header and body of each request
}

func newAttacker(t *testing.T) *attacker {
	a := &attacker{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.hits = append(a.hits, r.Method+" "+r.Header.Get("Authorization")+" "+string(body))
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"planted-access","refresh_token":"planted-refresh","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *attacker) received() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.hits...)
}

// Issue 17, finding 1: a token endpoint answering 307/308 must not get our
// credentials sent on to the redirect target, and nothing the target says
// is stored.
func TestEndpointRedirectsAreNotFollowed(t *testing.T) {
	evil := newAttacker(t)
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, evil.URL+"/steal?token=zzz-secret", code)
		}))
		defer redirector.Close()
		for _, op := range []struct {
			name   string
			flavor string
			run    func(c *credentials.Credentials) error
		}{
			{"refresh", "", func(c *credentials.Credentials) error { _, err := c.Token(context.Background()); return err }},
			{"revoke", "", func(c *credentials.Credentials) error {
				return c.Revoke(context.Background(), redirector.URL+"/revoke")
			}},
			{"code exchange", "", func(c *credentials.Credentials) error {
				_, err := c.Exchange(context.Background(), "code", "verifier", "http://127.0.0.1:1/cb")
				return err
			}},
		} {
			t.Run(fmt.Sprintf("%d %s", code, op.name), func(t *testing.T) {
				st := storage.NewStore(memory.New(nil))
				defer st.Close()
				rec := &storage.Record{Profile: "p", ClientID: "cid", ClientSecret: "client-secret-value",
					TokenURL: redirector.URL + "/token", Flavor: op.flavor, AccessToken: "old-access", Expiry: time.Now().Add(-time.Hour)}
				rec.Grant("refresh-token-value")
				if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
					t.Fatal(err)
				}
				c, err := credentials.New(credentials.Config{Store: st, Profile: "p", MaxRetries: -1})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				err = op.run(c)
				var ee *credentials.EndpointError
				if !errors.As(err, &ee) || ee.StatusCode != code || !strings.Contains(ee.Error(), "redirected to "+evil.URL) || strings.Contains(ee.Error(), "zzz-secret") {
					t.Fatalf("got %v; want an EndpointError %d naming the redirect target without its query", err, code)
				}
				if hits := evil.received(); len(hits) != 0 {
					t.Fatalf("the redirect target received %q", hits)
				}
				got, _, _ := st.Load(context.Background(), "p")
				if got.RefreshToken.Reveal() != "refresh-token-value" || got.AccessToken.Reveal() == "planted-access" {
					t.Fatal("the record changed")
				}
			})
		}
	}
}

// Issue 17, finding 2: Client must not hand our bearer token to another
// origin that a resource server redirects to.
func TestClientKeepsTokenOnItsOrigin(t *testing.T) {
	f := newFixture(t, oauthtestRotating())
	c := f.creds(t, nil)
	evil := newAttacker(t)
	var sawToken bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawToken = strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.URL.Path == "/here" {
			http.Redirect(w, r, "/elsewhere-same-origin", http.StatusFound)
			return
		}
		if r.URL.Path == "/away" {
			http.Redirect(w, r, evil.URL+"/x", http.StatusFound)
		}
	}))
	defer api.Close()
	resp, err := c.Client().Get(api.URL + "/here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !sawToken {
		t.Fatal("a same-origin redirect lost the token")
	}
	resp, err = c.Client().Get(api.URL + "/away")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hits := evil.received()
	if len(hits) != 1 || strings.Contains(hits[0], "Bearer") {
		t.Fatalf("cross-origin redirect target got %q", hits)
	}
}

// Issue 17, finding 9: a Credentials printed or logged shows no secret.
func TestCredentialsPrintsNoSecret(t *testing.T) {
	const dev = "developer-token-secret-value"
	c, err := credentials.New(credentials.Config{Store: storage.NewNamedStore("memory://x", memory.New(nil)), Profile: "p",
		Grant: &secretGrant{token: secret.Secret(dev), raw: dev}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("creds", "c", c)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logged.String()} {
		if strings.Contains(out, dev) {
			t.Fatalf("printed the developer token: %s", out)
		}
	}
}

// Issue 17, findings 8 and 9: strings from the server are escaped before
// they reach an error message, and a plain-http token endpoint on another
// machine is warned about.
func TestServerStringsEscapedAndCleartextWarned(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant\u001b[2J","error_description":"bad\u001b[31m red\rline"}`)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	// Every request goes to srv, whatever the URL says: nothing is dialled
	// but loopback.
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.URL.Scheme, r.URL.Host = "http", strings.TrimPrefix(srv.URL, "http://")
		return http.DefaultTransport.RoundTrip(r)
	})}
	st := storage.NewStore(memory.New(nil))
	rec := &storage.Record{Profile: "p", ClientID: "cid", ClientSecret: "cs", TokenURL: "http://idp.example/token"}
	rec.Grant("rt")
	st.Replace(context.Background(), nil, "", rec)
	c, _ := credentials.New(credentials.Config{Store: st, Profile: "p", HTTPClient: client,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	defer c.Close()
	_, err := c.Token(context.Background())
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\r") {
		t.Fatalf("error %q carries raw control characters", err)
	}
	if !strings.Contains(logs.String(), "plain http") {
		t.Fatalf("no cleartext warning in %q", logs.String())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func oauthtestRotating() oauthtest.Options { return oauthtest.Options{Rotate: true} }

// secretGrant holds a secret, both as a secret.Secret and as a plain
// string, as a careless Grant might.
type secretGrant struct {
	token secret.Secret
	raw   string
}

func (g *secretGrant) Obtain(context.Context, *storage.Record) (*credentials.Tokens, error) {
	return &credentials.Tokens{AccessToken: g.token}, nil
}
