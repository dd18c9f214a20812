package oauthtest

import (
	"crypto/rand"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The device authorization grant (RFC 8628): a client without a browser
// asks POST /oauth2/device_authorization for a device code and a user
// code, and polls the token endpoint with grant type
// urn:ietf:params:oauth:grant-type:device_code while the user enters the
// code at /oauth2/device. A test plays the user with ApproveDevice or
// DenyDevice (or posts the page's form), and can force a slow_down answer
// with SlowDownDevice; DevicePolls says how the client polled.
const (
	pathDeviceAuth = "/oauth2/device_authorization"
	pathDevice     = "/oauth2/device"

	grantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

	// defaultDeviceInterval and defaultDeviceTTL are what servers commonly
	// answer: RFC 8628's 5 s polling interval, codes that live minutes.
	defaultDeviceInterval = 5 * time.Second
	defaultDeviceTTL      = 10 * time.Minute

	// slowDownStep is what RFC 8628 §3.5 has clients add to their
	// interval after a slow_down; the server expects it from then on.
	slowDownStep = 5 * time.Second

	// userCodeChars are RFC 8628 §6.1's: no vowels (no words), no digits
	// or letters that look alike.
	userCodeChars = "BCDFGHJKLMNPQRSTVWXZ"
)

// Poll results, as DevicePoll.Result reports them: the error code the
// server answered, or "ok" for the poll that got the tokens.
const (
	PollPending  = "authorization_pending"
	PollSlowDown = "slow_down"
	PollDenied   = "access_denied"
	PollExpired  = "expired_token"
	PollOK       = "ok"
)

// DevicePoll is one device access token request the server answered.
type DevicePoll struct {
	At     time.Time // on the real clock: spacing is not the fake clock's business
	Result string    // one of the Poll* constants, or another error code
}

// deviceFlow is the server's state of the device grant; Server.mu guards it.
type deviceFlow struct {
	interval, ttl time.Duration // zero: the defaults
	byDevice      map[string]*deviceCode
	byUser        map[string]*deviceCode
}

type deviceState int

const (
	devicePending deviceState = iota
	deviceApproved
	deviceDenied
	deviceRedeemed
)

type deviceCode struct {
	clientID, scope, userCode string
	exp                       time.Time
	interval                  time.Duration // raised by each slow_down
	state                     deviceState
	slowDown                  int // forced slow_down answers still to give
	polls                     []DevicePoll
}

// deviceRoutes registers the device grant's endpoints.
func (s *Server) deviceRoutes(mux *http.ServeMux) {
	mux.HandleFunc(pathDeviceAuth, s.handleDeviceAuth)
	mux.HandleFunc(pathDevice, s.handleDevicePage)
}

// DeviceAuthorizationURL is the RFC 8628 device authorization endpoint.
func (s *Server) DeviceAuthorizationURL() string { return s.URL + pathDeviceAuth }

// VerificationURL is the page where a user enters a user code.
func (s *Server) VerificationURL() string { return s.URL + pathDevice }

// SetDeviceFlow sets the polling interval (whole seconds on the wire, at
// least one) and the lifetime of device codes issued from now on; zero
// keeps the default (5 s, 10 min).
func (s *Server) SetDeviceFlow(interval, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dev.interval, s.dev.ttl = interval, ttl
}

// ApproveDevice plays the user who enters userCode and consents: the
// client's next poll gets tokens. It reports whether a pending, unexpired
// code was found (dashes and case do not matter, as for a person typing).
func (s *Server) ApproveDevice(userCode string) bool {
	return s.decideDevice(userCode, deviceApproved)
}

// DenyDevice plays the user who declines: the next poll gets access_denied.
func (s *Server) DenyDevice(userCode string) bool {
	return s.decideDevice(userCode, deviceDenied)
}

// SlowDownDevice makes the server answer the next poll for userCode with
// slow_down, as a server that finds the client too eager does, and expect
// polls five seconds further apart from then on. It reports whether the
// code is known.
func (s *Server) SlowDownDevice(userCode string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dev.byUser[normalizeUserCode(userCode)]
	if d == nil {
		return false
	}
	d.slowDown++
	return true
}

// DevicePolls lists the polls the server answered for userCode, oldest first.
func (s *Server) DevicePolls(userCode string) []DevicePoll {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.dev.byUser[normalizeUserCode(userCode)]; d != nil {
		return append([]DevicePoll(nil), d.polls...)
	}
	return nil
}

func (s *Server) decideDevice(userCode string, to deviceState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dev.byUser[normalizeUserCode(userCode)]
	if d == nil || d.state != devicePending || !s.opts.Now().Before(d.exp) {
		return false
	}
	d.state = to
	return true
}

// normalizeUserCode keeps the letters of a typed code, upper-cased.
func normalizeUserCode(c string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}, c)
}

func newUserCode() string {
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = userCodeChars[int(b[i])%len(userCodeChars)]
	}
	return string(b[:4]) + "-" + string(b[4:])
}

// deviceAuthResponse is RFC 8628 §3.2.
type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// handleDeviceAuth is RFC 8628 §3.1-3.2: the client, public or
// confidential, gets a device code and a user code.
func (s *Server) handleDeviceAuth(w http.ResponseWriter, r *http.Request) {
	p, e := readParams(w, r)
	var client string
	if e == nil {
		client, e = s.authenticate(r, p)
	}
	if e != nil {
		s.writeError(w, e)
		return
	}
	s.mu.Lock()
	interval, ttl := s.dev.interval, s.dev.ttl
	if interval <= 0 {
		interval = defaultDeviceInterval
	}
	if ttl <= 0 {
		ttl = defaultDeviceTTL
	}
	// The wire carries whole seconds: round up, at least one.
	interval = max(time.Second, (interval+time.Second-1)/time.Second*time.Second)
	ttl = (ttl + time.Second - 1) / time.Second * time.Second
	if s.dev.byDevice == nil {
		s.dev.byDevice, s.dev.byUser = map[string]*deviceCode{}, map[string]*deviceCode{}
	}
	d := &deviceCode{clientID: client, scope: p.Get("scope"), exp: s.opts.Now().Add(ttl), interval: interval}
	for d.userCode == "" || s.dev.byUser[normalizeUserCode(d.userCode)] != nil {
		d.userCode = newUserCode()
	}
	deviceCode := rand.Text()
	s.dev.byDevice[deviceCode] = d
	s.dev.byUser[normalizeUserCode(d.userCode)] = d
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, deviceAuthResponse{
		DeviceCode:              deviceCode,
		UserCode:                d.userCode,
		VerificationURI:         s.VerificationURL(),
		VerificationURIComplete: s.VerificationURL() + "?user_code=" + url.QueryEscape(d.userCode),
		ExpiresIn:               int64(ttl / time.Second),
		Interval:                int64(interval / time.Second),
	})
}

// deviceGrant is RFC 8628 §3.4-3.5: the client polls with its device code
// until the user decided. A poll sooner than the interval after the last
// one gets slow_down, and the interval grows by five seconds.
func (s *Server) deviceGrant(client string, p url.Values) (*tokenResponse, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dev.byDevice[p.Get("device_code")]
	if d == nil || d.clientID != client {
		return nil, invalidGrant("unknown device code")
	}
	// Expiry is on the server's clock, like every token's; the spacing of
	// polls, like latency, on the real one.
	now, wall := s.opts.Now(), time.Now()
	result := func(code string) *oauthError {
		d.polls = append(d.polls, DevicePoll{At: wall, Result: code})
		return errorf(http.StatusBadRequest, code, "")
	}
	var last time.Time
	if n := len(d.polls); n > 0 {
		last = d.polls[n-1].At
	}
	switch {
	case d.state == deviceRedeemed:
		return nil, invalidGrant("device code already used")
	case !now.Before(d.exp):
		return nil, result(PollExpired)
	case d.slowDown > 0 || (!last.IsZero() && wall.Sub(last) < d.interval):
		if d.slowDown > 0 {
			d.slowDown--
		}
		d.interval += slowDownStep
		return nil, result(PollSlowDown)
	case d.state == devicePending:
		return nil, result(PollPending)
	case d.state == deviceDenied:
		return nil, result(PollDenied)
	}
	d.state = deviceRedeemed
	d.polls = append(d.polls, DevicePoll{At: wall, Result: PollOK})
	fam := s.newFamilyLocked(client, "user", d.scope)
	return s.response(s.issueAccessLocked(client, "user", d.scope, fam), fam.current, d.scope), nil
}

// handleDevicePage is the verification page a person opens: GET shows a
// form for the user code (filled in from verification_uri_complete), POST
// with user_code and action=approve or deny decides. Anyone who can reach
// the server can approve any code: it is a test server.
func (s *Server) handleDevicePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet:
		fmt.Fprintf(w, `<!doctype html><title>oauthtest: device sign-in</title>
<form method="post" action="%s">
<p>Enter the code your device shows: <input name="user_code" value="%s" autofocus></p>
<p><button name="action" value="approve">Approve</button> <button name="action" value="deny">Deny</button></p>
</form>
`, pathDevice, html.EscapeString(r.URL.Query().Get("user_code")))
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "malformed form", http.StatusBadRequest)
			return
		}
		code, ok, done := r.PostForm.Get("user_code"), false, ""
		switch r.PostForm.Get("action") {
		case "approve":
			ok, done = s.ApproveDevice(code), "approved"
		case "deny":
			ok, done = s.DenyDevice(code), "denied"
		default:
			http.Error(w, "action must be approve or deny", http.StatusBadRequest)
			return
		}
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "<p>oauthtest: no pending code like that (mistyped, expired, or already decided).</p>\n")
			return
		}
		fmt.Fprintf(w, "<p>oauthtest: code %s %s. The device gets the answer at its next poll.</p>\n", html.EscapeString(normalizeUserCode(code)), done)
	default:
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
	}
}
