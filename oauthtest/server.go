// Package oauthtest runs an in-process OAuth 2.0 authorization server for
// tests, benchmarks and demos, in the spirit of net/http/httptest.
//
// It speaks the wire protocol a real provider speaks, so that a client under
// test cannot tell the difference: the RFC 6749 token endpoint (grant types
// refresh_token, authorization_code with PKCE S256, client_credentials,
// password and RFC 8628's device_code), RFC 7009 revocation, pancloud's JSON
// flavour of both, and pancloud's developer-token redemption. Access tokens
// are HS256 JWTs (or opaque strings), refresh tokens can rotate with RFC
// 9700 reuse detection, and a test can count calls, inject latency and
// faults (scripted, or drawn per call by a seeded function), stop a refresh
// at the exact moment before or after the server rotated the token, and
// drive the server's clock. A checker can ask afterwards which refresh token
// of a grant is live, whether an access token was valid at a given time, how
// often each refresh token was presented, and every reuse the server
// detected.
//
// Endpoints, relative to Server.URL:
//
//	POST /oauth2/token               RFC 6749 token endpoint (form body)
//	POST /oauth2/revoke              RFC 7009 revocation (form body)
//	GET  /oauth2/authorize           consents at once: 302 to redirect_uri with code and state
//	POST /oauth2/device_authorization RFC 8628 device authorization (see ApproveDevice)
//	GET  /oauth2/device              the page where a user approves or denies a device's code
//	POST /api/oauth2/RequestToken    pancloud token endpoint (JSON body and response)
//	POST /api/oauth2/RevokeToken     pancloud revocation (JSON body)
//	POST /api/developer/token        developer-token redemption (Authorization: Bearer <developer token>)
//	GET  /api/resource               200 for a valid Bearer access token, 401 otherwise
//
// The server logs nothing unless Options.Logger is set, and never logs a
// secret or a token.
package oauthtest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

const (
	pathToken     = "/oauth2/token"
	pathRevoke    = "/oauth2/revoke"
	pathAuthorize = "/oauth2/authorize"
	pathPanToken  = "/api/oauth2/RequestToken"
	pathPanRevoke = "/api/oauth2/RevokeToken"
	pathDeveloper = "/api/developer/token"
	pathResource  = "/api/resource"

	maxBody = 1 << 20
)

// Options configure a Server. The zero value is a non-rotating server with
// one-hour JWT access tokens on the real clock.
type Options struct {
	// AccessTTL is the access-token lifetime (default 1h). The wire carries
	// whole seconds, so it is rounded up to a second.
	AccessTTL time.Duration

	// Rotate makes every refresh return a new refresh token in the same
	// family and retire the one presented. Without it the refresh token
	// stays the same and the response carries no refresh_token.
	Rotate bool

	// ReuseGrace keeps a rotated refresh token usable for this long after it
	// was rotated (Auth0's and Okta's leeway). Within the grace period it
	// returns a new access token and the family's current refresh token,
	// without rotating again, so a client that lost the server's answer can
	// recover the successor another process may already hold. After it, the
	// rotated token is a reuse: the whole family is revoked.
	ReuseGrace time.Duration

	// OmitExpiresIn leaves expires_in out of token responses, so clients
	// must read the expiry from the JWT's exp claim.
	OmitExpiresIn bool

	// Opaque issues random opaque access tokens instead of JWTs.
	Opaque bool

	// Now is the server's clock for issuing and checking tokens (default
	// time.Now). Latency and FaultTimeout use the real clock.
	Now func() time.Time

	// HangLimit bounds how long a FaultTimeout request hangs when its
	// client does not give up first (default 30s).
	HangLimit time.Duration

	// SlowReply is how long a FaultSlowReply answer waits after the
	// server did its work (default 500ms).
	SlowReply time.Duration

	// Logger receives one record per token request and one per reuse
	// detection; nil means silence.
	Logger *slog.Logger
}

// Server is a running test authorization server. Its methods are safe for
// concurrent use. It keeps every token it issued in memory.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port, with no trailing slash.
	URL string

	opts      Options
	key       []byte // HS256 key, random per server
	ts        *httptest.Server
	done      chan struct{} // closed by Close; ends holds, hangs and latency
	closeOnce sync.Once

	mu        sync.Mutex // guards the maps below
	clients   map[string]string
	users     map[string]string
	refresh   map[string]*refreshToken
	access    map[string]*accessToken // by jti (the token itself when opaque)
	codes     map[string]*authCode
	devTokens map[string]bool

	refreshLog []RefreshEvent
	reuses     []Reuse

	dev deviceFlow // the device authorization grant, in device.go

	ctl   control
	stats counters
}

// NewServer starts a server on a random port of 127.0.0.1. Call Close when done.
func NewServer(opts Options) *Server {
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SlowReply <= 0 {
		opts.SlowReply = 500 * time.Millisecond
	}
	if opts.HangLimit <= 0 {
		opts.HangLimit = 30 * time.Second
	}
	s := &Server{
		opts:      opts,
		key:       []byte(rand.Text()),
		done:      make(chan struct{}),
		clients:   map[string]string{},
		users:     map[string]string{},
		refresh:   map[string]*refreshToken{},
		access:    map[string]*accessToken{},
		codes:     map[string]*authCode{},
		devTokens: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(pathToken, s.handleToken)
	mux.HandleFunc(pathPanToken, s.handleToken)
	mux.HandleFunc(pathRevoke, s.handleRevoke)
	mux.HandleFunc(pathPanRevoke, s.handleRevoke)
	mux.HandleFunc(pathAuthorize, s.handleAuthorize)
	mux.HandleFunc(pathDeveloper, s.handleDeveloper)
	s.deviceRoutes(mux)
	mux.Handle(pathResource, s.RequireToken(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})))

	s.ts = httptest.NewUnstartedServer(mux)
	// net/http would otherwise print connection errors to the standard logger.
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	// Set before Start so that handler goroutines see it without a race.
	s.URL = "http://" + s.ts.Listener.Addr().String()
	s.ts.Start()
	return s
}

// Close releases held and hanging requests, then shuts the server down and
// waits for its requests to finish.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.ts.Close()
}

// TokenURL is the RFC 6749 token endpoint.
func (s *Server) TokenURL() string { return s.URL + pathToken }

// RevokeURL is the RFC 7009 revocation endpoint.
func (s *Server) RevokeURL() string { return s.URL + pathRevoke }

// AuthorizeURL is the authorization endpoint.
func (s *Server) AuthorizeURL() string { return s.URL + pathAuthorize }

// PancloudTokenURL is pancloud's JSON token endpoint.
func (s *Server) PancloudTokenURL() string { return s.URL + pathPanToken }

// PancloudRevokeURL is pancloud's JSON revocation endpoint.
func (s *Server) PancloudRevokeURL() string { return s.URL + pathPanRevoke }

// DeveloperTokenURL redeems developer tokens for access tokens.
func (s *Server) DeveloperTokenURL() string { return s.URL + pathDeveloper }

// ResourceURL answers 200 to a valid Bearer access token and 401 otherwise.
func (s *Server) ResourceURL() string { return s.URL + pathResource }

// Endpoint describes the server for golang.org/x/oauth2. It fixes the auth
// style to HTTP Basic because x/oauth2's auto-detection retries a failed
// first request with the other style, which would answer an injected fault
// with a second call and skew the counters.
func (s *Server) Endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: s.AuthorizeURL(), TokenURL: s.TokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
}

// AddClient registers a client. An empty secret makes a public client, which
// authenticates with its client_id alone (for PKCE flows).
func (s *Server) AddClient(id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = secret
}

// AddUser registers a resource owner for the password grant.
func (s *Server) AddUser(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[username] = password
}

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status      int
	basic       bool   // the client tried HTTP Basic: 401 must carry WWW-Authenticate
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func errorf(status int, code, desc string) *oauthError {
	return &oauthError{status: status, Code: code, Description: desc}
}

func invalidGrant(desc string) *oauthError {
	return errorf(http.StatusBadRequest, "invalid_grant", desc)
}

func invalidRequest(desc string) *oauthError {
	return errorf(http.StatusBadRequest, "invalid_request", desc)
}

func unavailable(desc string) *oauthError {
	return errorf(http.StatusServiceUnavailable, "temporarily_unavailable", desc)
}

func (s *Server) writeError(w http.ResponseWriter, e *oauthError) {
	if e.basic && e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauthtest"`)
	}
	writeJSON(w, e.status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readParams returns the request's parameters from a form body or, on the
// pancloud paths, from a JSON object whose string members are taken as
// parameters, so that both flavours share one implementation.
func readParams(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if r.Method != http.MethodPost {
		return nil, errorf(http.StatusMethodNotAllowed, "invalid_request", "use POST")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		if err := r.ParseForm(); err != nil {
			return nil, invalidRequest("malformed form body")
		}
		return r.PostForm, nil
	}
	var obj map[string]any
	if err := json.NewDecoder(r.Body).Decode(&obj); err != nil {
		return nil, invalidRequest("malformed JSON body")
	}
	v := url.Values{}
	for k, x := range obj {
		if str, ok := x.(string); ok {
			v.Set(k, str)
		}
	}
	return v, nil
}

// authenticate checks client credentials sent by HTTP Basic (RFC 6749
// §2.3.1, each part form-urlencoded) or as client_id/client_secret
// parameters, and returns the client's id.
func (s *Server) authenticate(r *http.Request, p url.Values) (string, *oauthError) {
	id, secret, basic := p.Get("client_id"), p.Get("client_secret"), false
	if u, pw, ok := r.BasicAuth(); ok {
		if secret != "" {
			return "", invalidRequest("more than one client authentication method")
		}
		uid, err1 := url.QueryUnescape(u)
		upw, err2 := url.QueryUnescape(pw)
		if err1 != nil || err2 != nil || (id != "" && id != uid) {
			return "", &oauthError{status: http.StatusUnauthorized, basic: true, Code: "invalid_client", Description: "malformed or conflicting client credentials"}
		}
		id, secret, basic = uid, upw, true
	}
	s.mu.Lock()
	want, ok := s.clients[id]
	s.mu.Unlock()
	if id == "" || !ok || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		return "", &oauthError{status: http.StatusUnauthorized, basic: basic, Code: "invalid_client", Description: "client authentication failed"}
	}
	return id, nil
}

// tokenResponse is RFC 6749 §5.1; pancloud and developer-token redemption
// answer with the same members.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	n := s.stats.tokenCalls.Add(1)
	p, e := readParams(w, r)
	if e != nil {
		s.writeError(w, e)
		return
	}
	grant := p.Get("grant_type")
	var ev *RefreshEvent
	if grant == "refresh_token" {
		s.stats.refreshCalls.Add(1)
		ev = s.newRefreshEvent(n, p.Get("refresh_token"))
		// Logged however the request ends, a dropped hold included.
		defer s.logRefresh(ev)
	}
	after, done := s.beforeToken(w, r, Call{N: n, Grant: grant, Header: r.Header}, ev)
	if done {
		return
	}
	client, e := s.authenticate(r, p)
	var resp *tokenResponse
	if e == nil {
		switch grant {
		case "refresh_token":
			resp, e = s.refreshGrant(r, client, p, ev)
		case "authorization_code":
			resp, e = s.codeGrant(client, p)
		case "client_credentials":
			resp, e = s.clientGrant(client, p)
		case "password":
			resp, e = s.passwordGrant(client, p)
		case grantDeviceCode:
			resp, e = s.deviceGrant(client, p)
		case "":
			e = invalidRequest("missing grant_type")
		default:
			e = errorf(http.StatusBadRequest, "unsupported_grant_type", "")
		}
	}
	s.logToken(r, grant, client, e)
	if e != nil {
		s.writeError(w, e)
		return
	}
	if s.answer(w, r, resp, after) && ev != nil {
		ev.Answered = true
	}
}

func (s *Server) logToken(r *http.Request, grant, client string, e *oauthError) {
	if s.opts.Logger == nil {
		return
	}
	result := "ok"
	if e != nil {
		result = e.Code
	}
	s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "oauthtest: token request",
		slog.String("path", r.URL.Path), slog.String("grant_type", grant),
		slog.String("client_id", client), slog.String("result", result))
}

// handleRevoke implements RFC 7009: 200 whether or not the token was known,
// so that a client cannot probe for tokens. The hint is accepted and not
// needed, since every token is found by value.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	p, e := readParams(w, r)
	if e == nil && !s.sleep(r.Context(), s.ctl.latency()) {
		e = unavailable("request canceled or server closing")
	}
	var client string
	if e == nil {
		client, e = s.authenticate(r, p)
	}
	if e == nil && p.Get("token") == "" {
		e = invalidRequest("missing token")
	}
	if e == nil {
		if _, refused := s.revoke(p.Get("token"), client); refused {
			e = errorf(http.StatusBadRequest, "unauthorized_client", "token was issued to another client")
		}
	}
	if e != nil {
		s.writeError(w, e)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, http.StatusOK, struct{}{})
	}
}

// handleAuthorize plays a user who consents at once: it redirects to
// redirect_uri with a code. Errors go to the redirect_uri too (RFC 6749
// §4.1.2.1), except for an unknown client or a bad redirect_uri, which must
// not be redirected to.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	_, known := s.clients[q.Get("client_id")]
	s.mu.Unlock()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if !known || err != nil || !redirect.IsAbs() {
		s.writeError(w, invalidRequest("unknown client_id or invalid redirect_uri"))
		return
	}
	back := redirect.Query()
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		back.Set("error", "invalid_request")
		back.Set("error_description", "PKCE with code_challenge_method=S256 is required")
	default:
		back.Set("code", s.newCode(q))
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// handleDeveloper redeems a developer token (pancloud's API Explorer
// service): each call returns a fresh access token.
func (s *Server) handleDeveloper(w http.ResponseWriter, r *http.Request) {
	n := s.stats.tokenCalls.Add(1)
	if r.Method != http.MethodPost {
		s.writeError(w, errorf(http.StatusMethodNotAllowed, "invalid_request", "use POST"))
		return
	}
	after, done := s.beforeToken(w, r, Call{N: n, Grant: "developer", Header: r.Header}, nil)
	if done {
		return
	}
	dt, ok := bearer(r)
	s.mu.Lock()
	ok = ok && s.devTokens[dt]
	var at string
	if ok {
		at = s.issueAccessLocked("developer", "developer", "", nil)
	}
	s.mu.Unlock()
	if !ok {
		s.writeError(w, errorf(http.StatusUnauthorized, "invalid_token", "unknown developer token"))
		return
	}
	s.answer(w, r, s.response(at, "", ""), after)
}

func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// RequireToken wraps next so that only requests with a valid Bearer access
// token reach it; the others get 401 with an RFC 6750 challenge.
func (s *Server) RequireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := bearer(r); !ok || !s.Valid(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, errorf(0, "invalid_token", ""))
			return
		}
		next.ServeHTTP(w, r)
	})
}
