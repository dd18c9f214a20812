package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/oauthtest"
)

// sl1 builds the authorizer of an SL1 credential given as JSON text, as
// SL1 stores it.
func sl1(t *testing.T, credential string, env auth.Env) httpauth.Authorizer {
	t.Helper()
	a, err := auth.NewSL1FromJSON([]byte(credential), env)
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	return a
}

func jsonQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// tokenServer answers every request with body, and keeps the requests.
func tokenServer(t *testing.T, body string) *recorder {
	return newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	})
}

// Seed 004: "Authentication Type authType ... default AuthNone": an
// SL1 credential without authType authorizes nothing.
func TestSL1AuthNone(t *testing.T) {
	for _, cred := range []string{`{}`, `{"authType": "AuthNone", "url": "https://device.example", "debug": false}`} {
		req := authorized(t, sl1(t, cred, auth.Env{}))
		if len(req.Header) != 0 {
			t.Errorf("%s: headers %v; want none", cred, req.Header)
		}
	}
}

// Seed 004: "Username username AuthBasic, AuthToken", "Password password".
func TestSL1AuthBasic(t *testing.T) {
	req := authorized(t, sl1(t, `{"authType": "AuthBasic", "username": "ops", "password": "pa:ss"}`, auth.Env{}))
	if u, p, ok := req.BasicAuth(); !ok || u != "ops" || p != "pa:ss" {
		t.Errorf("Basic %q %q %v; want ops, pa:ss", u, p, ok)
	}
}

// Seed 004: "Authorization Header authHeader AuthApiKey, AuthToken string
// Authorization": an API key goes in Authorization unless authHeader says
// otherwise (our own api_key scheme keeps en_auth's X-Api-Key), with
// "Prefix prefix" and "Suffix suffix".
func TestSL1AuthApiKey(t *testing.T) {
	req := authorized(t, sl1(t, `{"authType": "AuthApiKey", "apikey": "k123", "prefix": "Key ", "suffix": ";v2"}`, auth.Env{}))
	if got := req.Header.Get("Authorization"); got != "Key k123;v2" {
		t.Errorf("Authorization = %q; want %q", got, "Key k123;v2")
	}
	req = authorized(t, sl1(t, `{"authType": "AuthApiKey", "apikey": "k123", "authHeader": "X-API-Token"}`, auth.Env{}))
	if got := req.Header.Get("X-Api-Token"); got != "k123" || req.Header.Get("Authorization") != "" {
		t.Errorf("headers %v; want the key in X-API-Token only", req.Header)
	}
}

// Seed 004's AuthToken fields: "Token Key tokenKey ... Providing "token"
// would pull out tokenvalue123", "Bearer Token Format tokenFormat ...
// Bearer {}", "Expiry Time Key tokenExpiresInSelector ... expires_in",
// "HTTP Header 1 httpHeader1 ... X-Sample-Header:Sample Value", "HTTP
// Headers (JSON input) httpHeaders ... {"header1": "key1", "header2":
// "key2"}".
func TestSL1AuthToken(t *testing.T) {
	srv := tokenServer(t, `{"token": "tokenvalue123", "valid_for": 120}`)
	cred := `{"authType": "AuthToken", "url": "https://device.example/api", "authEndpoint": ` + jsonQuote(srv.URL+"/login") + `,
		"username": "ops", "password": "pw", "tokenKey": "token", "tokenFormat": "Token {}", "authHeader": "X-Auth",
		"tokenExpiresInSelector": "valid_for", "httpHeader1": "X-Sample-Header:Sample Value", "httpHeader2": "",
		"httpHeaders": "{\"header1\": \"key1\", \"header2\": \"key2\"}", "timeToNextRequest": 60,
		"tokenAuthRefresh": "tokenAuthRefreshDynamic", "tokenRefreshTTL": "3600", "opts": "", "proxy": false, "sslverifypeer": true}`
	before := time.Now()
	a := sl1(t, cred, auth.Env{})
	req := authorized(t, a)
	for k, want := range map[string]string{"X-Auth": "Token tokenvalue123", "X-Sample-Header": "Sample Value", "Header1": "key1", "Header2": "key2"} {
		if got := req.Header.Get(k); got != want {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}
	login, _ := srv.last(t)
	if u, p, _ := login.BasicAuth(); u != "ops" || p != "pw" || login.URL.Path != "/login" {
		t.Errorf("login %s as %q/%q; want /login as ops/pw", login.URL.Path, u, p)
	}
	tok, err := a.(*auth.TokenAuthorizer).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if life := tok.Expiry.Sub(before); life < 115*time.Second || life > 125*time.Second {
		t.Errorf("token lives %v; want the 120 s at tokenExpiresInSelector", life)
	}
}

// Seed 004: "Token Refresh Implementation tokenAuthRefresh ... Options
// tokenAuthRefreshStatic or tokenAuthRefreshDynamic", "Token TTL (seconds)
// tokenRefreshTTL ... TTL of the token (in seconds) before auto-refreshing
// for tokenAuthRefreshStatic": the static TTL wins over expires_in, for
// AuthToken and AuthOAuth2 alike.
func TestSL1StaticRefresh(t *testing.T) {
	srv := tokenServer(t, `{"access_token": "t1", "expires_in": 30}`)
	for _, cred := range []string{
		`{"authType": "AuthToken", "authEndpoint": ` + jsonQuote(srv.URL) + `, "tokenAuthRefresh": "tokenAuthRefreshStatic", "tokenRefreshTTL": 900}`,
		`{"authType": "AuthOAuth2", "oauth2Type": "ClientCredentials", "oauth2TokenURL": ` + jsonQuote(srv.URL) + `,
		  "oauth2ClientId": "c", "oauth2ClientSecret": "s", "tokenAuthRefresh": "tokenAuthRefreshStatic", "tokenRefreshTTL": "900"}`,
	} {
		before := time.Now()
		tok, err := sl1(t, cred, auth.Env{}).(*auth.TokenAuthorizer).Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if life := tok.Expiry.Sub(before); life < 895*time.Second || life > 905*time.Second {
			t.Errorf("token lives %v; want tokenRefreshTTL's 900 s", life)
		}
	}
}

// Seed 004's AuthOAuth2 with oauth2Type ClientCredentials against the
// test authorization server: "Token Format oauth2TokenFormat ... Bearer
// {}" and "Request Header oauth2TokenLabel ... Authorization" are the
// defaults; "Client auth method oauth2AuthType ... basic_auth or
// post_body"; "Token Scope oauth2ClientCredentialsScope".
func TestSL1OAuth2ClientCredentials(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(srv.Close)
	srv.AddClient(cid, csecret)
	for _, style := range []string{"basic_auth", "post_body"} {
		cred := `{"authType": "AuthOAuth2", "oauth2Type": "ClientCredentials", "oauth2TokenURL": ` + jsonQuote(srv.TokenURL()) + `,
			"oauth2ClientId": ` + jsonQuote(cid) + `, "oauth2ClientSecret": ` + jsonQuote(csecret) + `,
			"oauth2AuthType": "` + style + `", "oauth2ClientCredentialsScope": "read"}`
		tok, err := bearerOf(t, sl1(t, cred, auth.Env{}))
		if err != nil || !srv.Valid(tok) {
			t.Errorf("%s: %v; want a valid Bearer token", style, err)
		}
	}
	cred := `{"authType": "AuthOAuth2", "oauth2Type": "ClientCredentials", "oauth2TokenURL": ` + jsonQuote(srv.TokenURL()) + `,
		"oauth2ClientId": ` + jsonQuote(cid) + `, "oauth2ClientSecret": ` + jsonQuote(csecret) + `,
		"oauth2TokenLabel": "X-Token", "oauth2TokenFormat": "OAuth {}"}`
	req := authorized(t, sl1(t, cred, auth.Env{}))
	if tok, ok := strings.CutPrefix(req.Header.Get("X-Token"), "OAuth "); !ok || !srv.Valid(tok) {
		t.Errorf("X-Token = %q; want OAuth and a valid token", req.Header.Get("X-Token"))
	}
	_, err := auth.NewSL1FromJSON([]byte(`{"authType": "AuthOAuth2", "oauth2TokenURL": "https://x.example/t"}`), auth.Env{})
	if !isOptionError(err, "oauth2Type") {
		t.Errorf("oauth2Type None: %v; want an OptionError: it obtains no token", err)
	}
}

// Seed 004: "Additional body Parameters oauth2ResourceOwnerAdditionalParams
// ... Example: {"scope": "hello", "otherParam": "thanks"}" is taken as it
// stands, scope included; "Response Token Key oauth2TokenKey ...
// access_token" reads the token elsewhere.
func TestSL1OAuth2ResourceOwner(t *testing.T) {
	srv := tokenServer(t, `{"result": {"jwt": "tok-ro-1"}, "expires_in": 3600}`)
	cred := `{"authType": "AuthOAuth2", "oauth2Type": "ResourceOwner", "oauth2TokenURL": ` + jsonQuote(srv.URL+"/token") + `,
		"oauth2ClientId": "app", "oauth2ClientSecret": "app-secret", "oauth2AuthType": "post_body",
		"oauth2ResourceOwnerUsername": "alice", "oauth2ResourceOwnerPassword": "pw1", "oauth2ResourceOwnerScope": "base",
		"oauth2ResourceOwnerAdditionalParams": "{\"scope\": \"hello\", \"otherParam\": \"thanks\"}", "oauth2TokenKey": "result.jwt"}`
	req := authorized(t, sl1(t, cred, auth.Env{}))
	if got := req.Header.Get("Authorization"); got != "Bearer tok-ro-1" {
		t.Errorf("Authorization = %q; want the token at oauth2TokenKey", got)
	}
	_, body := srv.last(t)
	form, _ := url.ParseQuery(string(body))
	for k, want := range map[string]string{"grant_type": "password", "username": "alice", "password": "pw1",
		"scope": "hello", "otherParam": "thanks", "client_id": "app", "client_secret": "app-secret"} {
		if form.Get(k) != want {
			t.Errorf("form %s = %q; want %q", k, form.Get(k), want)
		}
	}
}

// Seed 004: "Authentication Failure Retry Time (seconds) timeToNextRequest
// AuthToken, AuthOAuth2 number 60 Number of seconds before retrying a
// failed authentication request." An OAuth2 grant that failed is not
// retried before then; callers get the failure meanwhile.
func TestSL1OAuth2TimeToNextRequest(t *testing.T) {
	var calls atomic.Int32
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error": "temporarily_unavailable"}`)
	})
	clk := &clock{t: time.Now()}
	for _, tc := range []struct {
		cred string
		wait time.Duration
	}{
		{`"timeToNextRequest": 30`, 30 * time.Second},
		{`"timeToNextRequest": ""`, 60 * time.Second}, // the default
	} {
		calls.Store(0)
		cred := `{"authType": "AuthOAuth2", "oauth2Type": "ClientCredentials", "oauth2TokenURL": ` + jsonQuote(srv.URL) + `,
			"oauth2ClientId": "c", "oauth2ClientSecret": "s", ` + tc.cred + `}`
		a := sl1(t, cred, auth.Env{Now: clk.Now, Credentials: credentials.Config{Now: clk.Now}})
		for i := range 3 {
			if _, err := bearerOf(t, a); err == nil {
				t.Fatal("a failing endpoint gave a token")
			}
			if i == 0 {
				clk.Add(tc.wait - time.Second)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%s: %d token requests within the wait; want 1", tc.cred, n)
		}
		clk.Add(2 * time.Second)
		bearerOf(t, a)
		if n := calls.Load(); n != 2 {
			t.Errorf("%s: %d token requests after the wait; want 2", tc.cred, n)
		}
	}
}

// Seed 004: "Authenticator Override authOverride ... Enter the name of
// the custom authenticator", which gets the credential's fields.
func TestSL1AuthOverride(t *testing.T) {
	auth.Register("AuthCustomSL1Test", func(p auth.Params, env auth.Env) (httpauth.Authorizer, error) {
		key, _ := p["apikey"].(string)
		return authorizerFunc(func(req *http.Request) { req.URL.RawQuery = "key=" + key }), nil
	})
	req := authorized(t, sl1(t, `{"authType": "AuthApiKey", "authOverride": "AuthCustomSL1Test", "apikey": "q1",
		"httpHeader1": "X-Extra: 1"}`, auth.Env{}))
	if req.URL.RawQuery != "key=q1" || req.Header.Get("X-Extra") != "1" || req.Header.Get("Authorization") != "" {
		t.Errorf("query %q, headers %v; want the custom authenticator's key=q1 and the extra header", req.URL.RawQuery, req.Header)
	}
	_, err := auth.NewSL1FromJSON([]byte(`{"authOverride": "NoSuchAuthenticator"}`), auth.Env{})
	if !errors.Is(err, auth.ErrUnknownScheme) {
		t.Errorf("unknown override: %v; want ErrUnknownScheme", err)
	}
}

type authorizerFunc func(*http.Request)

func (f authorizerFunc) Authorize(_ context.Context, req *http.Request) error { f(req); return nil }

// A field SL1 does not have is refused, not ignored, and so is a bad value.
func TestSL1BadFields(t *testing.T) {
	for cred, field := range map[string]string{
		`{"authType": "AuthBasic", "username": "u", "pasword": "p"}`:                                      "pasword",
		`{"authType": "AuthKerberos"}`:                                                                    "authType",
		`{"authType": "AuthToken", "authEndpoint": "https://x.example", "tokenAuthRefresh": "sometimes"}`: "tokenAuthRefresh",
		`{"authType": "AuthNone", "httpHeader1": "no colon"}`:                                             "httpHeader1",
		`{"authType": "AuthNone", "proxy": true}`:                                                         "proxyHost",
		`{"authType": "AuthNone", "sslverifypeer": "maybe"}`:                                              "sslverifypeer",
	} {
		if _, err := auth.NewSL1FromJSON([]byte(cred), auth.Env{}); !isOptionError(err, field) {
			t.Errorf("%s: %v; want an OptionError for %s", cred, err, field)
		}
	}
}

// Seed 004's proxy fields ("Proxy Settings proxy", "proxyHost",
// "proxyPort", "proxyUser", "proxyPasswd") route token requests through
// the proxy, with its credentials.
func TestSL1Proxy(t *testing.T) {
	proxy := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host != "token.example" {
			http.Error(w, "not proxied", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token": "via-proxy", "expires_in": 60}`)
	})
	u, _ := url.Parse(proxy.URL)
	cred := `{"authType": "AuthToken", "authEndpoint": "http://token.example/login", "proxy": "true",
		"proxyHost": "` + u.Hostname() + `", "proxyPort": ` + u.Port() + `, "proxyUser": "pu", "proxyPasswd": "pp"}`
	req := authorized(t, sl1(t, cred, auth.Env{}))
	if got := req.Header.Get("Authorization"); got != "Bearer via-proxy" {
		t.Errorf("Authorization = %q; want the token fetched through the proxy", got)
	}
	r, _ := proxy.last(t)
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("pu:pp")); r.Header.Get("Proxy-Authorization") != want {
		t.Errorf("Proxy-Authorization = %q; want the proxy user's", r.Header.Get("Proxy-Authorization"))
	}
}

// Seed 004: "SSL Peer Verify sslverifypeer ... True ... False means to
// have an insecure connection", "CA Path ca_path ... the Certificate
// Authority certificate path to use when making HTTPS requests".
func TestSL1TLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token": "tls-token", "expires_in": 60}`)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	base := `{"authType": "AuthToken", "authEndpoint": ` + jsonQuote(srv.URL) + `, "timeToNextRequest": 0`
	if _, err := bearerOf(t, sl1(t, base+`}`, auth.Env{})); err == nil {
		t.Error("an unknown CA was trusted by default")
	}
	for _, extra := range []string{`, "sslverifypeer": false`, `, "ca_path": ` + jsonQuote(caFile), `, "ca_path": ` + jsonQuote(dir)} {
		if tok, err := bearerOf(t, sl1(t, base+extra+`}`, auth.Env{})); err != nil || tok != "tls-token" {
			t.Errorf("%s: %q, %v; want the token", extra, tok, err)
		}
	}
}
