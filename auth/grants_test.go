package auth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

const (
	cid     = "svc-client"
	csecret = "cl!ent s3cret/with:odd&chars"
)

func writeToken(w http.ResponseWriter, v map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func TestClientCredentialsWire(t *testing.T) {
	for _, style := range []string{"basic", "body"} {
		t.Run(style, func(t *testing.T) {
			var n atomic.Int32
			tokenSrv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				writeToken(w, map[string]any{"access_token": fmt.Sprintf("at-%d", n.Add(1)), "token_type": "bearer", "expires_in": 3600})
			})
			api := newRecorder(t, nil)
			a, err := auth.New("oauth2_client_credentials", auth.Params{
				"token_url": tokenSrv.URL + "/token", "client_id": cid, "client_secret": csecret,
				"scopes": "read write", "client_auth": style, "params": map[string]any{"audience": "https://api"},
			}, auth.Env{})
			if err != nil {
				t.Fatal(err)
			}
			closeAuth(t, a)
			send(t, a, "GET", api.URL)
			send(t, a, "GET", api.URL)

			r, body := tokenSrv.last(t)
			form, _ := url.ParseQuery(string(body))
			if r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
				t.Errorf("token request %s %s", r.Method, r.Header.Get("Content-Type"))
			}
			want := url.Values{"grant_type": {"client_credentials"}, "scope": {"read write"}, "audience": {"https://api"}}
			if style == "body" {
				want.Set("client_id", cid)
				want.Set("client_secret", csecret)
				if r.Header.Get("Authorization") != "" {
					t.Errorf("body style also sent Authorization")
				}
			} else {
				u, p, ok := r.BasicAuth()
				// RFC 6749 §2.3.1: each part form-urlencoded inside Basic.
				if !ok || u != url.QueryEscape(cid) || p != url.QueryEscape(csecret) {
					t.Errorf("Basic = %q, %q, %v", u, p, ok)
				}
			}
			if form.Encode() != want.Encode() {
				t.Errorf("form = %v\nwant   %v", form, want)
			}
			if tokenSrv.count() != 1 {
				t.Errorf("%d token requests for two API calls, want 1 (cached)", tokenSrv.count())
			}
			if r, _ := api.last(t); r.Header.Get("Authorization") != "Bearer at-1" {
				t.Errorf("API got Authorization %q", r.Header.Get("Authorization"))
			}
		})
	}
}

func TestGrantOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		scheme string
		p      auth.Params
		option string
	}{
		{"oauth2_client_credentials", auth.Params{"client_id": "c", "client_secret": "s"}, "token_url"},
		{"oauth2_client_credentials", auth.Params{"token_url": "http://x/t", "client_secret": "s"}, "client_id"},
		{"oauth2_client_credentials", auth.Params{"token_url": "http://x/t", "client_id": "c"}, "client_secret"},
		{"oauth2_client_credentials", auth.Params{"token_url": "http://x/t", "client_id": "c", "client_secret": "s", "client_auth": "jwt"}, "client_auth"},
		{"oauth2_client_credentials", auth.Params{"token_url": "http://x/t", "client_id": "c", "client_secret": "s", "params": `{"grant_type":"x"}`}, "params"},
		{"oauth2_client_credentials", auth.Params{"token_url": "http://x/t", "client_id": "c", "client_secret": "s", "scopes": 7}, "scopes"},
		{"oauth2_password", auth.Params{"token_url": "http://x/t", "client_id": "c", "password": "p"}, "username"},
		{"oauth2_password", auth.Params{"token_url": "http://x/t", "client_id": "c", "username": "u"}, "password"},
		{"token_endpoint", auth.Params{"url": "/relative"}, "url"},
		{"token_endpoint", auth.Params{"url": "http://x/login", "format": "Bearer"}, "format"},
		{"token_endpoint", auth.Params{"url": "http://x/login", "retry_wait": "soon"}, "retry_wait"},
		{"tc_token", auth.Params{"tc_api_path": "http://x/api", "tc_token": "t"}, "tc_token_expires"},
		{"tc_token", auth.Params{"tc_api_path": "http://x/api", "tc_token": "t", "tc_token_expires": "tomorrow"}, "tc_token_expires"},
		{"tc_hmac", auth.Params{"api_access_id": "id"}, "api_secret_key"},
		{"oauth2_refresh_token", auth.Params{"flavor": "github"}, "flavor"},
	} {
		_, err := auth.New(tc.scheme, tc.p, auth.Env{})
		var oe *auth.OptionError
		if !errors.As(err, &oe) || oe.Option != tc.option || oe.Scheme != tc.scheme {
			t.Errorf("%s %v: err = %v, want an OptionError for %q", tc.scheme, tc.p, err, tc.option)
		}
	}
}

// TestPasswordGrant checks the password grant's body, that later tokens
// come from the refresh token, and that a dead refresh token falls back
// to the password.
func TestPasswordGrant(t *testing.T) {
	var refreshOK atomic.Bool
	refreshOK.Store(true)
	var n atomic.Int32
	tokenSrv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		i := n.Add(1)
		if r.PostForm.Get("grant_type") == "refresh_token" && !refreshOK.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		writeToken(w, map[string]any{"access_token": fmt.Sprintf("at-%d", i), "refresh_token": fmt.Sprintf("rt-%d", i), "expires_in": 3600})
	})
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer at-1" {
			w.WriteHeader(http.StatusUnauthorized) // the first token is refused, to force renewals
		}
	})
	a, err := auth.New("oauth2_password", auth.Params{
		"token_url": tokenSrv.URL, "client_id": cid, "client_auth": "body",
		"username": "alice", "password": "pa ss", "scopes": []string{"openid"},
	}, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	if code := send(t, a, "GET", api.URL); code != 200 {
		t.Fatalf("status %d", code)
	}
	forms := func() []url.Values {
		var out []url.Values
		for _, b := range tokenSrv.body {
			f, _ := url.ParseQuery(string(b))
			out = append(out, f)
		}
		return out
	}
	f := forms()
	want0 := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pa ss"}, "scope": {"openid"}, "client_id": {cid}}
	want1 := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}, "client_id": {cid}}
	if len(f) != 2 || f[0].Encode() != want0.Encode() || f[1].Encode() != want1.Encode() {
		t.Fatalf("token requests = %v\nwant [%v %v]", f, want0, want1)
	}

	// The refresh token dies: the next renewal logs in with the password.
	refreshOK.Store(false)
	ta := a.(*auth.TokenAuthorizer)
	if _, err := ta.Credentials().Refresh(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	f = forms()
	if len(f) != 4 || f[2].Get("grant_type") != "refresh_token" || f[2].Get("refresh_token") != "rt-2" || f[3].Get("grant_type") != "password" {
		t.Errorf("fallback requests = %v", f[2:])
	}
}

func TestErrorMapping(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(srv.Close)
	srv.AddClient(cid, csecret)
	srv.AddUser("alice", "right")

	a, _ := auth.New("oauth2_client_credentials", auth.Params{"token_url": srv.TokenURL(), "client_id": cid, "client_secret": "wrong"}, auth.Env{})
	closeAuth(t, a)
	err := a.Authorize(t.Context(), &http.Request{Header: http.Header{}})
	var ae *auth.AuthorizationError
	if !errors.Is(err, auth.ErrInvalidClient) || !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != "invalid_client" {
		t.Errorf("wrong client secret: %v", err)
	}

	a, _ = auth.New("oauth2_password", auth.Params{"token_url": srv.TokenURL(), "client_id": cid, "client_secret": csecret,
		"username": "alice", "password": "wrong"}, auth.Env{})
	closeAuth(t, a)
	err = a.Authorize(t.Context(), &http.Request{Header: http.Header{}})
	if !errors.Is(err, auth.ErrInvalidCredentials) || !errors.As(err, &ae) || ae.StatusCode != 400 || errors.Is(err, auth.ErrInvalidClient) {
		t.Errorf("wrong password: %v", err)
	}
	if !errors.Is(err, credentials.ErrReauthRequired) {
		t.Errorf("the credentials error is not kept in the chain: %v", err)
	}
	var ee *credentials.EndpointError
	if !errors.As(err, &ee) {
		t.Errorf("no *credentials.EndpointError in the chain: %v", err)
	}

	srv.FailNext(1, oauthtest.FaultServerError)
	a, _ = auth.New("oauth2_password", auth.Params{"token_url": srv.TokenURL(), "client_id": cid, "client_secret": csecret,
		"username": "alice", "password": "right"}, auth.Env{Credentials: credentials.Config{MaxRetries: -1}})
	closeAuth(t, a)
	err = a.Authorize(t.Context(), &http.Request{Header: http.Header{}})
	if !errors.As(err, &ae) || ae.StatusCode/100 != 5 || errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("server error: %v", err)
	}
}

// TestRenewOn401 revokes the token at the server: the resource answers
// 401, the Transport renews once and replays the POST body.
func TestRenewOn401(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(srv.Close)
	srv.AddClient(cid, csecret)
	var bodies []string
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !srv.Valid(tok) {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	a, _ := auth.New("oauth2_client_credentials", auth.Params{"token_url": srv.TokenURL(), "client_id": cid, "client_secret": csecret}, auth.Env{})
	closeAuth(t, a)
	client := httpauth.Client(a)
	post := func() int {
		resp, err := client.Post(api.URL, "text/plain", bytes.NewBufferString("payload"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if post() != 200 {
		t.Fatal("first request refused")
	}
	tok, _ := a.(*auth.TokenAuthorizer).Token(t.Context())
	srv.Revoke(tok.AccessToken.Reveal())
	srv.ResetStats()
	if code := post(); code != 200 {
		t.Fatalf("after revocation: %d, want 200 after one renewal", code)
	}
	if c := srv.Stats().TokenCalls; c != 1 {
		t.Errorf("%d token calls for one 401, want 1", c)
	}
	for _, b := range api.body {
		bodies = append(bodies, string(b))
	}
	if strings.Join(bodies, ",") != "payload,payload,payload" {
		t.Errorf("bodies = %q", bodies)
	}

	// A server that refuses every token: one renewal, then the 401 stands.
	deny := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	srv.ResetStats()
	if code := send(t, a, "GET", deny.URL); code != 401 || deny.count() != 2 || srv.Stats().TokenCalls != 1 {
		t.Errorf("status %d after %d requests and %d token calls; want 401, 2, 1", code, deny.count(), srv.Stats().TokenCalls)
	}
}

func TestRefreshTokenScheme(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient(cid, csecret)
	st := storage.NewStore(memory.New(nil))
	params := auth.Params{"token_url": srv.TokenURL(), "client_id": cid, "client_secret": csecret, "refresh_token": srv.IssueRefreshToken(cid)}
	a, err := auth.New("oauth2_refresh_token", params, auth.Env{Store: st, Profile: "pan"})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	if code := send(t, a, "GET", srv.ResourceURL()); code != 200 {
		t.Fatalf("status %d", code)
	}
	rec, _, _ := st.Load(t.Context(), "pan")
	if rec.RefreshToken.Reveal() == params["refresh_token"] || rec.AccessToken == "" {
		t.Error("rotated refresh token not stored")
	}
	// A second authorizer with the now-stale configured refresh token
	// uses the store's, which is current.
	b, _ := auth.New("oauth2_refresh_token", params, auth.Env{Store: st, Profile: "pan"})
	closeAuth(t, b)
	b.(*auth.TokenAuthorizer).Credentials().Refresh(t.Context(), nil)
	if code := send(t, b, "GET", srv.ResourceURL()); code != 200 {
		t.Fatalf("second authorizer: status %d", code)
	}
	if s := srv.Stats(); s.ReuseDetections != 0 {
		t.Errorf("%d reuse detections", s.ReuseDetections)
	}
	// Wrapping a Credentials directly.
	c, _ := credentials.New(credentials.Config{Store: st, Profile: "pan"})
	t.Cleanup(func() { c.Close() })
	if code := send(t, auth.FromCredentials(c, auth.Env{}), "GET", srv.ResourceURL()); code != 200 {
		t.Errorf("FromCredentials: status %d", code)
	}
}

func TestProfileInUse(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(srv.Close)
	srv.AddClient("one", "s1")
	srv.AddClient("two", "s2")
	st := storage.NewStore(memory.New(nil))
	env := auth.Env{Store: st, Profile: "shared"}
	a, _ := auth.New("oauth2_client_credentials", auth.Params{"token_url": srv.TokenURL(), "client_id": "one", "client_secret": "s1"}, env)
	closeAuth(t, a)
	if err := a.Authorize(t.Context(), &http.Request{Header: http.Header{}}); err != nil {
		t.Fatal(err)
	}
	b, _ := auth.New("oauth2_client_credentials", auth.Params{"token_url": srv.TokenURL(), "client_id": "two", "client_secret": "s2"}, env)
	closeAuth(t, b)
	if err := b.Authorize(t.Context(), &http.Request{Header: http.Header{}}); !errors.Is(err, auth.ErrProfileInUse) {
		t.Errorf("another client on the same profile: %v", err)
	}
}

func TestTokenEndpoint(t *testing.T) {
	var fail atomic.Bool
	login := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		if fail.Load() || u != "bob" || p != "hunter2" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"message":"bad login"}`)
			return
		}
		writeToken(w, map[string]any{"data": map[string]any{"session": []any{map[string]any{"token": "sess-1", "ttl": "120"}}}})
	})
	api := newRecorder(t, nil)
	params := auth.Params{
		"url": login.URL + "/login", "username": "bob", "password": "hunter2",
		"token_path": "data.session.0.token", "expires_in_path": "data.session.0.ttl",
		"header": "X-Auth-Token", "format": "Token {}", "retry_wait": 30,
	}
	a, err := auth.New("token_endpoint", params, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	start := time.Now()
	send(t, a, "GET", api.URL)
	if r, _ := api.last(t); r.Header.Get("X-Auth-Token") != "Token sess-1" {
		t.Errorf("X-Auth-Token = %q", r.Header.Get("X-Auth-Token"))
	}
	if r, _ := login.last(t); r.Method != "POST" || r.URL.Path != "/login" {
		t.Errorf("login %s %s", r.Method, r.URL)
	}
	tok, _ := a.(*auth.TokenAuthorizer).Token(t.Context())
	if d := tok.Expiry.Sub(start); d < 119*time.Second || d > 121*time.Second {
		t.Errorf("expiry in %v, want 120s from the response", d)
	}

	// A failed login: the typed error, then no new attempt within retry_wait.
	fail.Store(true)
	b, _ := auth.New("token_endpoint", params, auth.Env{Profile: "b"})
	closeAuth(t, b)
	n := login.count()
	for range 3 {
		err = b.Authorize(t.Context(), &http.Request{Header: http.Header{}})
		time.Sleep(20 * time.Millisecond)
	}
	var ae *auth.AuthorizationError
	if !errors.Is(err, auth.ErrInvalidCredentials) || !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Message != "bad login" {
		t.Errorf("failed login: %v", err)
	}
	if c := login.count() - n; c != 1 {
		t.Errorf("%d login attempts within retry_wait, want 1", c)
	}

	// JSON login, static TTL.
	jsonLogin := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		writeToken(w, map[string]any{"access_token": "j-1", "expires_in": 5})
	})
	c, _ := auth.New("token_endpoint", auth.Params{"url": jsonLogin.URL, "login": "json", "username": "bob", "password": "hunter2",
		"ttl": "10m", "static_ttl": true}, auth.Env{})
	closeAuth(t, c)
	tok, err = c.(*auth.TokenAuthorizer).Token(t.Context())
	if err != nil || tok.AccessToken.Reveal() != "j-1" || time.Until(tok.Expiry) < 9*time.Minute {
		t.Errorf("static ttl token = %+v, %v", tok, err)
	}
	r, body := jsonLogin.last(t)
	var got map[string]string
	json.Unmarshal(body, &got)
	if r.Header.Get("Content-Type") != "application/json" || got["username"] != "bob" || got["password"] != "hunter2" || r.Header.Get("Authorization") != "" {
		t.Errorf("JSON login: %s %v", r.Header.Get("Content-Type"), got)
	}
}

func TestTCToken(t *testing.T) {
	var renewals []string
	tc := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/appAuth":
			old := r.URL.Query().Get("expiredToken")
			renewals = append(renewals, old)
			writeToken(w, map[string]any{"apiToken": old + "+", "apiTokenExpires": fmt.Sprint(time.Now().Add(time.Hour).Unix())})
		default:
			if !strings.HasPrefix(r.Header.Get("Authorization"), "TC-Token ") {
				w.WriteHeader(http.StatusUnauthorized)
			}
		}
	})
	// Far from expiry: sent as is.
	a, err := auth.New("tc_token", auth.Params{"tc_api_path": tc.URL + "/api", "tc_token": "tok-A",
		"tc_token_expires": float64(time.Now().Add(time.Hour).Unix())}, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	send(t, a, "GET", tc.URL+"/api/v2/owners")
	if r, _ := tc.last(t); r.Header.Get("Authorization") != "TC-Token tok-A" || len(renewals) != 0 {
		t.Errorf("Authorization = %q after %d renewals", r.Header.Get("Authorization"), len(renewals))
	}
	// Within the renewal window: renewed first, with the expiring token.
	b, _ := auth.New("tc_token", auth.Params{"tc_api_path": tc.URL + "/api/", "tc_token": "tok-B",
		"tc_token_expires": fmt.Sprint(time.Now().Add(10 * time.Second).Unix())}, auth.Env{})
	closeAuth(t, b)
	send(t, b, "GET", tc.URL+"/api/v2/owners")
	if r, _ := tc.last(t); r.Header.Get("Authorization") != "TC-Token tok-B+" || len(renewals) != 1 || renewals[0] != "tok-B" {
		t.Errorf("Authorization = %q, renewals %q", r.Header.Get("Authorization"), renewals)
	}
	if r, _ := tc.last(t); r.URL.Path != "/api/v2/owners" {
		t.Errorf("last request %s", r.URL)
	}
}
