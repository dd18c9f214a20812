package auth_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// loggingTransport logs whole requests and responses, headers and bodies,
// as a careless debugging session would.
type loggingTransport struct {
	log  *slog.Logger
	what string
}

func (l loggingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.GetBody != nil {
		rc, _ := req.GetBody()
		body, _ = io.ReadAll(rc)
	}
	l.log.Debug("request", "to", l.what, "method", req.Method, "url", req.URL.String(), "header", req.Header, "body", string(body))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		l.log.Debug("request failed", "to", l.what, "err", err)
		return nil, err
	}
	// Token endpoint answers are not logged: they carry the new token
	// before anything could have told the Masker about it.
	if l.what == "api" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		l.log.Debug("response", "to", l.what, "status", resp.Status, "header", resp.Header, "body", string(b))
	}
	return resp, nil
}

// TestNoSecretInLogs runs every scheme's configuration and request cycle
// through a masked debug logger, and checks that no secret shows up there,
// in %v, %+v or %#v of a config or an authorizer, or in an error.
func TestNoSecretInLogs(t *testing.T) {
	masker := secret.NewMasker()
	var buf bytes.Buffer
	var bufMu sync.Mutex
	out := writerFunc(func(p []byte) (int, error) { bufMu.Lock(); defer bufMu.Unlock(); return buf.Write(p) })
	log := slog.New(masker.Handler(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	textLog := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: masker.ReplaceAttr}))
	secrets := map[string]bool{} // every secret value that must not appear
	addSecret := func(vs ...string) {
		for _, v := range vs {
			if v != "" {
				secrets[v] = true
			}
		}
	}

	// An API that echoes the credentials it got, as some error pages do.
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "you sent %q and %q", r.Header.Get("Authorization"), r.URL.RawQuery)
	})
	oauth := oauthtest.NewServer(oauthtest.Options{Rotate: true, AccessTTL: time.Hour})
	t.Cleanup(oauth.Close)
	oauth.AddClient(cid, csecret)
	oauth.AddUser("alice", "alice-password-42")
	rt := oauth.IssueRefreshToken(cid)
	tc := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		writeToken(w, map[string]any{"apiToken": "tc-renewed-" + r.URL.Query().Get("expiredToken"), "apiTokenExpires": time.Now().Add(time.Hour).Unix()})
	})
	login := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if _, p, _ := r.BasicAuth(); p != "endpoint-password-7" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"message":"password %s is wrong"}`, p) // a server that echoes it
			return
		}
		writeToken(w, map[string]any{"access_token": "endpoint-session-token-99", "expires_in": 600})
	})
	_, keyPEM := p521PEM(t, false)

	st := storage.NewStore(memory.New(nil))
	schemes := []struct {
		name   string
		config any // the typed config, to print
		params auth.Params
	}{
		{"none", struct{}{}, nil},
		{"basic", auth.BasicConfig{Username: "bob", Password: "basic-password-1"}, nil},
		{"api_key", auth.APIKeyConfig{Key: "api-key-header-2", Prefix: "Key "}, nil},
		{"api_key", auth.APIKeyConfig{Key: "api key/query&3", Query: "apikey"}, nil},
		{"bearer", auth.BearerConfig{Token: "static-bearer-token-4"}, nil},
		{"oauth2_client_credentials", auth.ClientCredentialsConfig{TokenURL: oauth.TokenURL(), ClientID: cid, ClientSecret: csecret, Scopes: []string{"a"}}, nil},
		{"oauth2_password", auth.PasswordConfig{TokenURL: oauth.TokenURL(), ClientID: cid, ClientSecret: csecret, ClientAuth: credentials.AuthInBody,
			Username: "alice", Password: "alice-password-42"}, nil},
		{"oauth2_refresh_token", auth.RefreshTokenConfig{TokenURL: oauth.TokenURL(), ClientID: cid, ClientSecret: csecret, RefreshToken: secret.Secret(rt)}, nil},
		{"token_endpoint", auth.TokenEndpointConfig{URL: login.URL, Username: "bob", Password: "endpoint-password-7"}, nil},
		{"tc_token", auth.TCTokenConfig{BaseURL: tc.URL + "/api", Token: "tc-token-initial-5", TokenExpires: time.Now().Add(10 * time.Second)}, nil},
		{"tc_hmac", auth.TCHMACConfig{AccessID: "tc-access-id", SecretKey: "tc-hmac-secret-key-6"}, nil},
		{"jwt_es512", auth.JWTConfig{PrivateKey: secret.Secret(keyPEM), Issuer: "iss", ClientID: "cid", Audience: "inst", Subject: "user:1"}, nil},
	}
	addSecret(base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(cid)+":"+url.QueryEscape(csecret))),
		base64.StdEncoding.EncodeToString([]byte("bob:endpoint-password-7")))
	addSecret(csecret, "alice-password-42", rt, "basic-password-1", base64.StdEncoding.EncodeToString([]byte("bob:basic-password-1")),
		"api-key-header-2", "api key/query&3", url.QueryEscape("api key/query&3"), "static-bearer-token-4",
		"endpoint-password-7", "endpoint-session-token-99", "tc-token-initial-5", "tc-hmac-secret-key-6", keyPEM)
	for _, line := range strings.Split(keyPEM, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			addSecret(line)
		}
	}

	for i, s := range schemes {
		p := s.params
		if p == nil {
			p = paramsOf(t, s.config)
		}
		env := auth.Env{Masker: masker, Logger: log, Store: st, Profile: fmt.Sprintf("p%d", i),
			HTTPClient: &http.Client{Transport: loggingTransport{log: log, what: "token endpoint"}}}
		a, err := auth.New(s.name, p, env)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		closeAuth(t, a)
		log.Debug("configured", "scheme", s.name, "config", s.config, "params", p, "authorizer", a)
		textLog.Debug("configured", "scheme", s.name, "config", s.config, "params", p)
		client := &http.Client{Transport: &httpauth.Transport{Authorizer: a, Base: loggingTransport{log: log, what: "api"}}}
		for range 2 {
			resp, err := client.Get(api.URL + "/v1/things?x=1")
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			resp.Body.Close()
			if ta, ok := a.(*auth.TokenAuthorizer); ok {
				// Rotate, to check that later tokens are masked too.
				if _, err := ta.Credentials().Refresh(t.Context(), nil); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
			}
		}
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			for _, x := range []any{s.config, a} {
				if got := fmt.Sprintf(f, x); leaks(got, secrets) != "" {
					t.Errorf("%s: %s of %T shows a secret: %s", s.name, f, x, got)
				}
			}
		}
	}
	// Every token the API saw is a secret too; an HMAC signature is not
	// (it is bound to one request and timestamp, and not masked).
	for _, r := range api.reqs {
		if strings.HasPrefix(r.Header.Get("Authorization"), "TC ") {
			continue
		}
		addSecret(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), r.Header.Get("Authorization"))
		if k := r.URL.Query().Get("apikey"); k != "" {
			addSecret(k)
		}
	}
	names, _ := st.List(t.Context())
	for _, name := range names {
		rec, _, _ := st.Load(t.Context(), name)
		addSecret(rec.AccessToken.Reveal(), rec.RefreshToken.Reveal())
	}

	// Errors: a server echoing a password, a rejected client, bad options.
	var errs []error
	bad, _ := auth.New("token_endpoint", auth.Params{"url": login.URL, "username": "bob", "password": "endpoint-password-WRONG"},
		auth.Env{Masker: masker, Logger: log, Profile: "bad"})
	closeAuth(t, bad)
	addSecret("endpoint-password-WRONG")
	errs = append(errs, bad.Authorize(t.Context(), &http.Request{Header: http.Header{}}))
	badClient, _ := auth.New("oauth2_client_credentials", auth.Params{"token_url": oauth.TokenURL(), "client_id": cid, "client_secret": "wrong-secret-8"},
		auth.Env{Masker: masker, Logger: log})
	closeAuth(t, badClient)
	addSecret("wrong-secret-8")
	errs = append(errs, badClient.Authorize(t.Context(), &http.Request{Header: http.Header{}}))
	_, err := auth.New("api_key", auth.Params{"key": "api-key-header-2", "header": "bad header"}, auth.Env{})
	errs = append(errs, err)
	_, err = auth.New("jwt_es512", auth.Params{"private_key": keyPEM[:200], "issuer": "i", "cid": "c"}, auth.Env{})
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		log.Debug("failed", "err", err)
		if s := leaks(fmt.Sprintf("%v %+v", err, err), secrets); s != "" {
			t.Errorf("error %q shows a secret", err)
		}
	}
	var ae *auth.AuthorizationError
	if !errors.As(errs[0], &ae) || !strings.Contains(ae.Message, secret.Mask) {
		t.Errorf("the echoed password was not masked in %v", errs[0])
	}

	logged := buf.String()
	if s := leaks(logged, secrets); s != "" {
		i := strings.Index(logged, s)
		t.Errorf("a secret (%d bytes) appears in the log: …%s…", len(s), logged[max(0, i-200):min(len(logged), i+len(s)+50)])
	}
	for _, want := range []string{`"scheme":"tc_hmac"`, "TC tc-access-id:", "oauth2_password", "grant_type=refresh_token", "expiredToken="} {
		if !strings.Contains(logged, want) {
			t.Errorf("the log lacks %q: the test did not log what it meant to", want)
		}
	}
	if testing.Verbose() {
		t.Log(logged)
	}
	t.Logf("%d log bytes, %d lines, %d secrets checked, %d masks", len(logged), strings.Count(logged, "\n"), len(secrets), strings.Count(logged, secret.Mask))
}

func leaks(s string, secrets map[string]bool) string {
	for v := range secrets {
		if strings.Contains(s, v) {
			return v
		}
	}
	return ""
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// paramsOf turns a typed config into the Params a configuration file would
// give, by its json tags: it also checks that every field has a tag.
func paramsOf(t *testing.T, cfg any) auth.Params {
	p := auth.Params{}
	v := reflect.ValueOf(cfg)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			t.Fatalf("%v.%s has no json tag", v.Type(), f.Name)
		}
		if v.Field(i).IsZero() {
			continue
		}
		switch x := v.Field(i).Interface().(type) {
		case secret.Secret:
			p[name] = x.Reveal()
		case time.Time:
			p[name] = x.Unix()
		case credentials.AuthStyle:
			p[name] = string(x)
		default:
			p[name] = x
		}
	}
	return p
}
