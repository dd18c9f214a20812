package oauthtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	clientID     = "app"
	clientSecret = "p@ss:w/rd&=" // needs form-urlencoding inside HTTP Basic
	publicID     = "spa"
)

// fakeClock is a settable server clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(s.Close)
	s.AddClient(clientID, clientSecret)
	s.AddClient("other", "other-secret")
	s.AddClient(publicID, "")
	s.AddUser("alice", "wonderland")
	return s
}

// req describes one request: a form body, or a JSON body when json is set.
type req struct {
	method string // default POST
	path   string
	form   url.Values
	json   map[string]string
	basic  []string // id, secret: sent form-urlencoded as RFC 6749 §2.3.1 says
	bearer string
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }

func do(t *testing.T, ctx context.Context, s *Server, rq req) (resp, error) {
	t.Helper()
	var body io.Reader
	ctype := "application/x-www-form-urlencoded"
	if rq.json != nil {
		b, _ := json.Marshal(rq.json)
		body, ctype = bytes.NewReader(b), "application/json"
	} else {
		body = strings.NewReader(rq.form.Encode())
	}
	if rq.method == "" {
		rq.method = http.MethodPost
	}
	hr, err := http.NewRequestWithContext(ctx, rq.method, s.URL+rq.path, body)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", ctype)
	if rq.basic != nil {
		hr.SetBasicAuth(url.QueryEscape(rq.basic[0]), url.QueryEscape(rq.basic[1]))
	}
	if rq.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+rq.bearer)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	out := resp{status: res.StatusCode, header: res.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			return out, err
		}
	}
	return out, nil
}

func mustDo(t *testing.T, s *Server, rq req) resp {
	t.Helper()
	r, err := do(t, context.Background(), s, rq)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}, "client_secret": {clientSecret}}
}

func refresh(t *testing.T, s *Server, rt string) resp {
	t.Helper()
	return mustDo(t, s, req{path: "/oauth2/token", form: refreshForm(rt)})
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// lifetimeIs reports whether the claims' exp is secs after iat, allowing
// the server's rounding of exp up to the next whole second.
func lifetimeIs(c map[string]any, secs float64) bool {
	d := c["exp"].(float64) - c["iat"].(float64)
	return d == secs || d == secs+1
}

func TestTokenEndpoint(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		req        func(s *Server) req
		wantStatus int
		wantError  string
		check      func(t *testing.T, s *Server, r resp)
	}{
		{
			name: "refresh with credentials in the form",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", form: refreshForm(s.IssueRefreshToken(clientID))}
			},
			check: func(t *testing.T, s *Server, r resp) {
				if r.str("token_type") != "Bearer" || r.body["expires_in"] != 3600.0 || !s.Valid(r.str("access_token")) {
					t.Errorf("body = %v", r.body)
				}
				if _, ok := r.body["refresh_token"]; ok {
					t.Error("a non-rotating server returned a refresh_token")
				}
				if r.header.Get("Cache-Control") != "no-store" {
					t.Error("missing Cache-Control: no-store")
				}
				c := jwtClaims(t, r.str("access_token"))
				if c["sub"] != "user" || c["client_id"] != clientID || c["jti"] == "" || !lifetimeIs(c, 3600) {
					t.Errorf("claims = %v", c)
				}
			},
		},
		{
			name: "refresh with HTTP Basic, form-urlencoded",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", basic: []string{clientID, clientSecret},
					form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.IssueRefreshToken(clientID)}}}
			},
		},
		{
			name: "wrong secret in the form",
			req: func(s *Server) req {
				f := refreshForm(s.IssueRefreshToken(clientID))
				f.Set("client_secret", "nope")
				return req{path: "/oauth2/token", form: f}
			},
			wantStatus: 401, wantError: "invalid_client",
		},
		{
			name: "wrong secret in HTTP Basic",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", basic: []string{clientID, "nope"},
					form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.IssueRefreshToken(clientID)}}}
			},
			wantStatus: 401, wantError: "invalid_client",
			check: func(t *testing.T, s *Server, r resp) {
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 after Basic without WWW-Authenticate")
				}
			},
		},
		{
			name: "two authentication methods",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", basic: []string{clientID, clientSecret}, form: refreshForm(s.IssueRefreshToken(clientID))}
			},
			wantStatus: 400, wantError: "invalid_request",
		},
		{
			name:       "unknown refresh token",
			req:        func(s *Server) req { return req{path: "/oauth2/token", form: refreshForm("made-up")} },
			wantStatus: 400, wantError: "invalid_grant",
		},
		{
			name: "refresh token of another client",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", form: refreshForm(s.IssueRefreshToken("other"))}
			},
			wantStatus: 400, wantError: "invalid_grant",
		},
		{
			name: "unsupported grant type",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", form: url.Values{"grant_type": {"implicit"}, "client_id": {clientID}, "client_secret": {clientSecret}}}
			},
			wantStatus: 400, wantError: "unsupported_grant_type",
		},
		{
			name:       "missing grant type",
			req:        func(s *Server) req { return req{path: "/oauth2/token", basic: []string{clientID, clientSecret}} },
			wantStatus: 400, wantError: "invalid_request",
		},
		{
			name:       "GET on the token endpoint",
			req:        func(s *Server) req { return req{method: http.MethodGet, path: "/oauth2/token"} },
			wantStatus: 405, wantError: "invalid_request",
		},
		{
			name: "pancloud JSON refresh",
			req: func(s *Server) req {
				return req{path: "/api/oauth2/RequestToken", json: map[string]string{"client_id": clientID, "client_secret": clientSecret,
					"refresh_token": s.IssueRefreshToken(clientID), "grant_type": "refresh_token"}}
			},
			check: func(t *testing.T, s *Server, r resp) {
				if !s.Valid(r.str("access_token")) {
					t.Error("access token not valid")
				}
			},
		},
		{
			name: "pancloud JSON wrong secret",
			req: func(s *Server) req {
				return req{path: "/api/oauth2/RequestToken", json: map[string]string{"client_id": clientID, "client_secret": "nope",
					"refresh_token": s.IssueRefreshToken(clientID), "grant_type": "refresh_token"}}
			},
			wantStatus: 401, wantError: "invalid_client",
		},
		{
			name: "client_credentials",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", basic: []string{clientID, clientSecret}, form: url.Values{"grant_type": {"client_credentials"}, "scope": {"logs"}}}
			},
			check: func(t *testing.T, s *Server, r resp) {
				if _, ok := r.body["refresh_token"]; ok || r.str("scope") != "logs" {
					t.Errorf("body = %v", r.body)
				}
				if c := jwtClaims(t, r.str("access_token")); c["sub"] != clientID || c["scope"] != "logs" {
					t.Errorf("claims = %v", c)
				}
			},
		},
		{
			name: "client_credentials for a public client",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {publicID}}}
			},
			wantStatus: 400, wantError: "unauthorized_client",
		},
		{
			name: "password grant",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", basic: []string{clientID, clientSecret},
					form: url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"}}}
			},
			check: func(t *testing.T, s *Server, r resp) {
				if !s.ValidRefresh(r.str("refresh_token")) || jwtClaims(t, r.str("access_token"))["sub"] != "alice" {
					t.Errorf("body = %v", r.body)
				}
			},
		},
		{
			name: "password grant with a wrong password",
			req: func(s *Server) req {
				return req{path: "/oauth2/token", basic: []string{clientID, clientSecret},
					form: url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"looking-glass"}}}
			},
			wantStatus: 400, wantError: "invalid_grant",
		},
		{
			name: "expires_in omitted",
			opts: Options{OmitExpiresIn: true, AccessTTL: 90 * time.Second},
			req: func(s *Server) req {
				return req{path: "/oauth2/token", form: refreshForm(s.IssueRefreshToken(clientID))}
			},
			check: func(t *testing.T, s *Server, r resp) {
				if _, ok := r.body["expires_in"]; ok {
					t.Error("expires_in present")
				}
				if c := jwtClaims(t, r.str("access_token")); !lifetimeIs(c, 90) {
					t.Errorf("claims = %v", c)
				}
			},
		},
		{
			name: "opaque access tokens",
			opts: Options{Opaque: true},
			req: func(s *Server) req {
				return req{path: "/oauth2/token", form: refreshForm(s.IssueRefreshToken(clientID))}
			},
			check: func(t *testing.T, s *Server, r resp) {
				if tok := r.str("access_token"); strings.Contains(tok, ".") || !s.Valid(tok) {
					t.Errorf("opaque token %q: valid=%v", tok, s.Valid(tok))
				}
			},
		},
		{
			name: "developer token redemption",
			req:  func(s *Server) req { return req{path: "/api/developer/token", bearer: s.IssueDeveloperToken()} },
			check: func(t *testing.T, s *Server, r resp) {
				if !s.Valid(r.str("access_token")) || r.body["expires_in"] != 3600.0 {
					t.Errorf("body = %v", r.body)
				}
			},
		},
		{
			name:       "unknown developer token",
			req:        func(s *Server) req { return req{path: "/api/developer/token", bearer: "made-up"} },
			wantStatus: 401, wantError: "invalid_token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.opts)
			r := mustDo(t, s, tt.req(s))
			want := tt.wantStatus
			if want == 0 {
				want = http.StatusOK
			}
			if r.status != want || r.str("error") != tt.wantError {
				t.Fatalf("got %d %v, want %d error %q", r.status, r.body, want, tt.wantError)
			}
			if tt.check != nil {
				tt.check(t, s, r)
			}
		})
	}
}

func TestRotationAndReuseDetection(t *testing.T) {
	s := newTestServer(t, Options{Rotate: true})
	rt0 := s.IssueRefreshToken(clientID)
	r1 := refresh(t, s, rt0)
	rt1, at1 := r1.str("refresh_token"), r1.str("access_token")
	if r1.status != 200 || rt1 == "" || rt1 == rt0 {
		t.Fatalf("first refresh: %d %v", r1.status, r1.body)
	}
	if s.ValidRefresh(rt0) || !s.ValidRefresh(rt1) {
		t.Fatal("rotation did not retire the old token or did not make the new one current")
	}
	r2 := refresh(t, s, rt1)
	rt2, at2 := r2.str("refresh_token"), r2.str("access_token")

	// rt0 again: a reuse. The whole family goes, access tokens too.
	if r := refresh(t, s, rt0); r.status != 400 || r.str("error") != "invalid_grant" {
		t.Fatalf("reuse: %d %v", r.status, r.body)
	}
	for _, tok := range []string{rt1, rt2} {
		if s.ValidRefresh(tok) {
			t.Error("refresh token of a revoked family still valid")
		}
	}
	if s.Valid(at1) || s.Valid(at2) {
		t.Error("access token of a revoked family still valid")
	}
	if r := refresh(t, s, rt2); r.str("error") != "invalid_grant" {
		t.Errorf("current token after reuse: %d %v", r.status, r.body)
	}
	// Other families are untouched.
	if r := refresh(t, s, s.IssueRefreshToken(clientID)); r.status != 200 {
		t.Errorf("unrelated family: %d", r.status)
	}
	got := s.Stats()
	if got.ReuseDetections != 1 || got.RefreshCalls != 5 || got.TokenCalls != 5 || got.Issued != 3 {
		t.Errorf("stats = %+v", got)
	}
}

func TestConcurrentReuseHasOneWinner(t *testing.T) {
	s := newTestServer(t, Options{Rotate: true})
	rt0 := s.IssueRefreshToken(clientID)
	const n = 16
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { statuses <- refresh(t, s, rt0).status })
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for st := range statuses {
		if st == 200 {
			ok++
		}
	}
	if ok != 1 || s.Stats().ReuseDetections != 1 || s.Stats().RefreshCalls != n {
		t.Errorf("%d successes, stats %+v", ok, s.Stats())
	}
}

func TestReuseGrace(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s := newTestServer(t, Options{Rotate: true, ReuseGrace: 10 * time.Second, Now: clk.Now})
	rt0 := s.IssueRefreshToken(clientID)
	rt1 := refresh(t, s, rt0).str("refresh_token")

	clk.Add(5 * time.Second)
	r := refresh(t, s, rt0)
	if r.status != 200 || r.str("refresh_token") != rt1 || !s.Valid(r.str("access_token")) {
		t.Fatalf("within grace: %d %v, want the current successor", r.status, r.body)
	}
	if !s.ValidRefresh(rt1) || s.Stats().ReuseDetections != 0 {
		t.Fatal("a use within grace counted as reuse")
	}

	clk.Add(6 * time.Second)
	if r := refresh(t, s, rt0); r.str("error") != "invalid_grant" || s.Stats().ReuseDetections != 1 || s.ValidRefresh(rt1) {
		t.Fatalf("after grace: %d %v, stats %+v", r.status, r.body, s.Stats())
	}
}

func TestRevocation(t *testing.T) {
	type tokens struct{ access, refresh string }
	tests := []struct {
		name        string
		req         func(tk tokens) req
		wantStatus  int
		wantAccess  bool // access token still valid afterwards
		wantRefresh bool
		wantCount   int64
	}{
		{
			name: "access token, form, Basic",
			req: func(tk tokens) req {
				return req{path: "/oauth2/revoke", basic: []string{clientID, clientSecret}, form: url.Values{"token": {tk.access}, "token_type_hint": {"access_token"}}}
			},
			wantStatus: 200, wantRefresh: true, wantCount: 1,
		},
		{
			name: "refresh token revokes the family, pancloud JSON",
			req: func(tk tokens) req {
				return req{path: "/api/oauth2/RevokeToken", json: map[string]string{"client_id": clientID, "client_secret": clientSecret,
					"token": tk.refresh, "token_type_hint": "refresh_token"}}
			},
			wantStatus: 200, wantCount: 1,
		},
		{
			name: "refresh token without a hint",
			req: func(tk tokens) req {
				return req{path: "/oauth2/revoke", form: url.Values{"token": {tk.refresh}, "client_id": {clientID}, "client_secret": {clientSecret}}}
			},
			wantStatus: 200, wantCount: 1,
		},
		{
			name: "unknown token is not an error",
			req: func(tk tokens) req {
				return req{path: "/oauth2/revoke", basic: []string{clientID, clientSecret}, form: url.Values{"token": {"made-up"}}}
			},
			wantStatus: 200, wantAccess: true, wantRefresh: true,
		},
		{
			name: "another client's token",
			req: func(tk tokens) req {
				return req{path: "/oauth2/revoke", basic: []string{"other", "other-secret"}, form: url.Values{"token": {tk.refresh}}}
			},
			wantStatus: 400, wantAccess: true, wantRefresh: true,
		},
		{
			name: "wrong client secret",
			req: func(tk tokens) req {
				return req{path: "/oauth2/revoke", basic: []string{clientID, "nope"}, form: url.Values{"token": {tk.refresh}}}
			},
			wantStatus: 401, wantAccess: true, wantRefresh: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Options{})
			rt := s.IssueRefreshToken(clientID)
			tk := tokens{access: refresh(t, s, rt).str("access_token"), refresh: rt}
			if r := mustDo(t, s, tt.req(tk)); r.status != tt.wantStatus {
				t.Fatalf("status %d %v, want %d", r.status, r.body, tt.wantStatus)
			}
			if s.Valid(tk.access) != tt.wantAccess || s.ValidRefresh(tk.refresh) != tt.wantRefresh || s.Stats().Revocations != tt.wantCount {
				t.Errorf("access valid %v, refresh valid %v, stats %+v", s.Valid(tk.access), s.ValidRefresh(tk.refresh), s.Stats())
			}
		})
	}
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize runs the consent redirect and returns its query.
func authorize(t *testing.T, s *Server, q url.Values) url.Values {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(s.AuthorizeURL() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d", res.StatusCode)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), "http://localhost/cb") {
		t.Fatalf("authorize: Location %q", loc)
	}
	return loc.Query()
}

func TestAuthorizationCodePKCE(t *testing.T) {
	const verifier = "a-verifier-that-is-long-enough-for-rfc-7636-43-chars"
	const redirect = "http://localhost/cb"
	authQuery := url.Values{"response_type": {"code"}, "client_id": {publicID}, "redirect_uri": {redirect},
		"state": {"xyz"}, "code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}
	exchange := func(code, verifier string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
			"code_verifier": {verifier}, "client_id": {publicID}}
	}
	tests := []struct {
		name      string
		form      func(code string) url.Values
		wantError string
	}{
		{"right verifier", func(code string) url.Values { return exchange(code, verifier) }, ""},
		{"wrong verifier", func(code string) url.Values { return exchange(code, verifier+"x") }, "invalid_grant"},
		{"no verifier", func(code string) url.Values { return exchange(code, "") }, "invalid_grant"},
		{"other redirect_uri", func(code string) url.Values {
			f := exchange(code, verifier)
			f.Set("redirect_uri", "http://localhost/elsewhere")
			return f
		}, "invalid_grant"},
		{"unknown code", func(string) url.Values { return exchange("made-up", verifier) }, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Options{})
			back := authorize(t, s, authQuery)
			if back.Get("state") != "xyz" || back.Get("code") == "" {
				t.Fatalf("redirect query %v", back)
			}
			r := mustDo(t, s, req{path: "/oauth2/token", form: tt.form(back.Get("code"))})
			if r.str("error") != tt.wantError {
				t.Fatalf("got %d %v, want error %q", r.status, r.body, tt.wantError)
			}
		})
	}

	t.Run("replayed code revokes what it issued", func(t *testing.T) {
		s := newTestServer(t, Options{})
		code := authorize(t, s, authQuery).Get("code")
		first := mustDo(t, s, req{path: "/oauth2/token", form: exchange(code, verifier)})
		if r := mustDo(t, s, req{path: "/oauth2/token", form: exchange(code, verifier)}); r.str("error") != "invalid_grant" {
			t.Fatalf("replay: %d %v", r.status, r.body)
		}
		if s.Valid(first.str("access_token")) || s.ValidRefresh(first.str("refresh_token")) {
			t.Error("tokens from a replayed code still valid")
		}
	})

	t.Run("authorize without PKCE", func(t *testing.T) {
		s := newTestServer(t, Options{})
		q := url.Values{"response_type": {"code"}, "client_id": {publicID}, "redirect_uri": {redirect}, "state": {"xyz"}}
		if back := authorize(t, s, q); back.Get("error") != "invalid_request" || back.Get("code") != "" || back.Get("state") != "xyz" {
			t.Errorf("redirect query %v", back)
		}
	})
}

func TestFaults(t *testing.T) {
	tests := []struct {
		fault      Fault
		wantStatus int
		wantError  string
		wantErr    bool // a transport or decoding error
	}{
		{FaultServerError, 500, "server_error", false},
		{FaultUnavailable, 503, "temporarily_unavailable", false},
		{FaultInvalidGrant, 400, "invalid_grant", false},
		{FaultMalformedJSON, 200, "", true},
		{FaultTimeout, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			s := newTestServer(t, Options{Rotate: true, HangLimit: 50 * time.Millisecond})
			rt := s.IssueRefreshToken(clientID)
			s.FailNext(1, tt.fault)
			r, err := do(t, context.Background(), s, req{path: "/oauth2/token", form: refreshForm(rt)})
			if (err != nil) != tt.wantErr || r.status != tt.wantStatus || r.str("error") != tt.wantError {
				t.Fatalf("got %d %v err=%v", r.status, r.body, err)
			}
			// The fault changed nothing: the same refresh token works next.
			if r := refresh(t, s, rt); r.status != 200 {
				t.Fatalf("after the fault: %d %v", r.status, r.body)
			}
			if st := s.Stats(); st.Failures != 1 || st.TokenCalls != 2 || st.RefreshCalls != 2 || st.Issued != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}

	t.Run("timeout ends when the client gives up", func(t *testing.T) {
		s := newTestServer(t, Options{HangLimit: time.Hour})
		s.FailNext(1, FaultTimeout)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := do(t, ctx, s, req{path: "/oauth2/token", form: refreshForm(s.IssueRefreshToken(clientID))}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("queued in order, then cleared", func(t *testing.T) {
		s := newTestServer(t, Options{})
		rt := s.IssueRefreshToken(clientID)
		s.FailNext(1, FaultUnavailable)
		s.FailNext(2, FaultServerError)
		for _, want := range []int{503, 500} {
			if r := refresh(t, s, rt); r.status != want {
				t.Fatalf("status %d, want %d", r.status, want)
			}
		}
		s.ClearFaults()
		if r := refresh(t, s, rt); r.status != 200 {
			t.Fatalf("after ClearFaults: %d", r.status)
		}
	})
}

func TestLatency(t *testing.T) {
	s := newTestServer(t, Options{})
	rt := s.IssueRefreshToken(clientID)
	s.SetLatency(80 * time.Millisecond)
	start := time.Now()
	if r := refresh(t, s, rt); r.status != 200 || time.Since(start) < 80*time.Millisecond {
		t.Fatalf("status %d after %v", r.status, time.Since(start))
	}
	s.SetLatency(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := do(t, ctx, s, req{path: "/oauth2/token", form: refreshForm(rt)}); err != nil {
		t.Fatal(err)
	}
}

// TestHoldRefreshes kills a client on either side of the rotation.
func TestHoldRefreshes(t *testing.T) {
	tests := []struct {
		stage       Stage
		wantRotated bool
	}{
		{BeforeRotate, false},
		{AfterRotate, true},
	}
	for _, tt := range tests {
		t.Run(tt.stage.String(), func(t *testing.T) {
			s := newTestServer(t, Options{Rotate: true})
			rt0 := s.IssueRefreshToken(clientID)
			h := s.HoldRefreshes(tt.stage)
			ctx, kill := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, err := do(t, ctx, s, req{path: "/oauth2/token", form: refreshForm(rt0)})
				errc <- err
			}()
			<-h.Arrived()
			kill()
			h.Drop()
			if err := <-errc; err == nil { // canceled or EOF, whichever came first
				t.Fatal("killed client got an answer")
			}
			if s.ValidRefresh(rt0) == tt.wantRotated {
				t.Fatalf("rt0 valid = %v after a kill at %v", s.ValidRefresh(rt0), tt.stage)
			}
			// Without a grace period, the survivor holding rt0 either
			// refreshes normally or trips reuse detection.
			r := refresh(t, s, rt0)
			if rotated := r.status != 200; rotated != tt.wantRotated {
				t.Fatalf("after kill: %d %v", r.status, r.body)
			}
		})
	}

	t.Run("drop without a client kill", func(t *testing.T) {
		s := newTestServer(t, Options{Rotate: true})
		rt0 := s.IssueRefreshToken(clientID)
		h := s.HoldRefreshes(AfterRotate)
		errc := make(chan error, 1)
		go func() {
			_, err := do(t, context.Background(), s, req{path: "/oauth2/token", form: refreshForm(rt0)})
			errc <- err
		}()
		<-h.Arrived()
		h.Drop()
		if err := <-errc; err == nil {
			t.Fatal("dropped request got an answer")
		}
	})

	t.Run("release lets held requests finish", func(t *testing.T) {
		s := newTestServer(t, Options{Rotate: true, ReuseGrace: time.Minute})
		rt0 := s.IssueRefreshToken(clientID)
		h := s.HoldRefreshes(AfterRotate)
		const n = 3
		got := make(chan resp, n)
		for range n {
			go func() { got <- refresh(t, s, rt0) }()
		}
		for range n {
			<-h.Arrived()
		}
		if s.Stats().Issued != n {
			t.Errorf("stats = %+v, want %d issued while held", s.Stats(), n)
		}
		h.Release()
		var rt1 string
		for range n {
			r := <-got
			if r.status != 200 || (rt1 != "" && r.str("refresh_token") != rt1) {
				t.Fatalf("released: %d %v", r.status, r.body)
			}
			rt1 = r.str("refresh_token")
		}
		if !s.ValidRefresh(rt1) {
			t.Error("successor not valid")
		}
	})
}

func TestServerClockAndResource(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s := newTestServer(t, Options{Now: clk.Now, AccessTTL: time.Minute})
	at := refresh(t, s, s.IssueRefreshToken(clientID)).str("access_token")
	if c := jwtClaims(t, at); c["iat"] != 1_700_000_000.0 || c["exp"] != 1_700_000_060.0 {
		t.Errorf("claims = %v", c)
	}
	get := func(tok string) int {
		return mustDo(t, s, req{method: http.MethodGet, path: "/api/resource", bearer: tok}).status
	}
	if !s.Valid(at) || get(at) != 200 {
		t.Fatal("fresh token rejected")
	}
	if s.Valid(at[:len(at)-2]+"xx") || get("") != 401 {
		t.Error("tampered or missing token accepted")
	}
	clk.Add(time.Minute)
	if s.Valid(at) || get(at) != 401 {
		t.Error("expired token accepted")
	}
}

func TestStatsConcurrentAndReset(t *testing.T) {
	s := newTestServer(t, Options{})
	rt := s.IssueRefreshToken(clientID)
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if r := refresh(t, s, rt); r.status != 200 {
				t.Errorf("status %d", r.status)
			}
			s.Stats()
		})
	}
	wg.Wait()
	if st := s.Stats(); st.TokenCalls != n || st.RefreshCalls != n || st.Issued != n {
		t.Errorf("stats = %+v", st)
	}
	s.ResetStats()
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("after reset: %+v", st)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	s := newTestServer(t, Options{Rotate: true, Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	rt0 := s.IssueRefreshToken(clientID)
	r := refresh(t, s, rt0)
	refresh(t, s, rt0) // reuse
	s.FailNext(1, FaultServerError)
	refresh(t, s, rt0)
	logs := buf.String()
	if !strings.Contains(logs, "reuse detected") {
		t.Errorf("no reuse record in %s", logs)
	}
	for _, secret := range []string{clientSecret, url.QueryEscape(clientSecret), rt0, r.str("refresh_token"), r.str("access_token")} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret: %s", logs)
		}
	}
}
