package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// hdrClose closes the connection after the answer.
var hdrClose = []string{"close"}

// HeaderName is the header every request but /healthz must carry, with
// the value "1". A server-side request forgery through a co-located web
// app rarely controls request headers, and a browser cannot send it
// cross-origin without a preflight the agent never answers.
const HeaderName = "Tokencache-Agent"

// AllProfiles in Config.Allow serves every profile in the store.
const AllProfiles = "*"

// MaxBodyBytes bounds a request body (only reports have one): an access
// token in JSON fits many times over.
const MaxBodyBytes = 16 << 10

// DefaultWaitTimeout is Config.WaitTimeout's default.
const DefaultWaitTimeout = 30 * time.Second

// Config configures a Handler.
type Config struct {
	// Profiles hands out the tokens. Required. The Handler does not close
	// it: its owner does, after Handler.Close.
	Profiles *credentials.Profiles
	// Allow lists the profiles the agent serves; a request for another
	// gets 403 whether or not it exists. AllProfiles ("*") serves every
	// profile of the store. Required: an agent that serves nothing by
	// default is safer than one that serves everything.
	Allow []string
	// Key, when set, must be presented as "Authorization: Bearer KEY" on
	// every request but /healthz. Required in practice for TCP: any local
	// user can reach a loopback port.
	Key secret.Secret
	// WaitTimeout bounds how long one request waits for a refresh; the
	// refresh itself goes on for the others. Default DefaultWaitTimeout.
	WaitTimeout time.Duration
	// Logger receives warnings (failed refreshes, refused requests at
	// debug level); nil means silent. Nothing logged carries a secret.
	Logger *slog.Logger
}

// Handler serves tokens over HTTP. See the package documentation for the
// endpoints. It is safe for concurrent use.
type Handler struct {
	profiles *credentials.Profiles
	all      bool
	allowed  map[string]*profileState // fixed when !all
	dynamic  sync.Map                 // name -> *profileState, when all
	key      []byte                   // "Bearer " + Key, nil when no key
	wait     time.Duration
	log      *slog.Logger
	m        metrics
	closed   atomic.Bool
}

// profileState is what the Handler keeps per served profile: its
// Credentials and its counters.
type profileState struct {
	name  string
	mu    sync.Mutex // serialises the first Get
	creds atomic.Pointer[credentials.Credentials]
	pm    profileMetrics
	// fatal holds the last error a retry will not fix (re-authorization,
	// a rejected client, missing fields) until a token is served again:
	// readiness reports it.
	fatal atomic.Pointer[string]
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Profiles == nil {
		return nil, errors.New("agent: Config.Profiles is required")
	}
	if len(cfg.Allow) == 0 {
		return nil, errors.New("agent: Config.Allow names no profile (use agent.AllProfiles to serve every profile)")
	}
	h := &Handler{profiles: cfg.Profiles, wait: cfg.WaitTimeout, log: cfg.Logger, allowed: map[string]*profileState{}}
	if h.wait <= 0 {
		h.wait = DefaultWaitTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Key != "" {
		h.key = []byte("Bearer " + cfg.Key.Reveal())
	}
	for _, p := range cfg.Allow {
		if p == AllProfiles {
			h.all = true
			continue
		}
		if err := storage.CheckKey(p); err != nil {
			return nil, fmt.Errorf("agent: Config.Allow: %w", err)
		}
		h.allowed[p] = &profileState{name: p}
	}
	return h, nil
}

// Close makes the Handler refuse further requests (503 shutting_down).
// It closes nothing it was handed: the Profiles, the Credentials it hands
// out and its store stay their owner's, who may go on using them or serve
// them with another Handler. The owner closes the Profiles once the server
// has stopped (http.Server.Shutdown); that Close gives a rotated refresh
// token a store outage held back a last write, and its error names the
// recovery journal entry of one it could not write. Close returns nil; it
// has an error result to be an io.Closer.
func (h *Handler) Close() error {
	h.closed.Store(true)
	return nil
}

func (h *Handler) eachState(fn func(*profileState)) {
	names := make([]string, 0, len(h.allowed))
	for n := range h.allowed {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fn(h.allowed[n])
	}
	if h.all {
		var dyn []*profileState
		h.dynamic.Range(func(_, v any) bool {
			if s := v.(*profileState); h.allowed[s.name] == nil {
				dyn = append(dyn, s)
			}
			return true
		})
		slices.SortFunc(dyn, func(a, b *profileState) int { return strings.Compare(a.name, b.name) })
		for _, s := range dyn {
			fn(s)
		}
	}
}

// Routes.
const (
	routeToken = iota
	routeRaw
	routeRejected
	routeHealth
	routeReady
	routeMetrics
	routeOther
	numRoutes
)

var routeNames = [numRoutes]string{"token", "token_raw", "rejected", "healthz", "readyz", "metrics", "other"}

// Pre-built header values: assigning them to the header map directly
// spares the canonicalisation and allocation of Header.Set on the hot path.
// net/http only reads them.
var (
	hdrJSON    = []string{"application/json"}
	hdrText    = []string{"text/plain; charset=utf-8"}
	hdrNoStore = []string{"no-store"}
	hdrNoSniff = []string{"nosniff"}
	hdrBearer  = []string{`Bearer realm="tokencache-agent"`}
	hdrProm    = []string{"text/plain; version=0.0.4; charset=utf-8"}
)

// ServeHTTP answers one request; see the package documentation for the
// endpoints and the order of the checks.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.m.inFlight.Add(1)
	route, code := h.serve(w, r)
	h.m.inFlight.Add(-1)
	h.m.count(route, code)
}

// serve handles one request and returns its route and status, for metrics.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (route, code int) {
	hdr := w.Header()
	hdr["Cache-Control"] = hdrNoStore
	hdr["X-Content-Type-Options"] = hdrNoSniff
	route = routeOther
	// Requests that went through a proxy or come from a browser page are
	// refused before anything else: the agent is for local programs.
	if _, ok := r.Header["X-Forwarded-For"]; ok {
		return route, h.fail(w, r, http.StatusForbidden, "forwarded", "a request with X-Forwarded-For is refused: the agent serves local clients only")
	}
	if _, ok := r.Header["Forwarded"]; ok {
		return route, h.fail(w, r, http.StatusForbidden, "forwarded", "a request with Forwarded is refused: the agent serves local clients only")
	}
	if _, ok := r.Header["Origin"]; ok {
		return route, h.fail(w, r, http.StatusForbidden, "origin", "a request with Origin (from a browser) is refused")
	}
	if !loopbackHost(r) {
		// DNS rebinding: a page whose name now resolves to 127.0.0.1 is
		// same-origin for the browser, but its Host is still its name.
		return route, h.fail(w, r, http.StatusForbidden, "host", "the Host header must name a loopback address over TCP")
	}
	path := r.URL.Path
	if r.URL.RawPath != "" || !strings.HasPrefix(path, "/") || strings.Contains(path, "//") {
		// Percent-encoded or odd paths never name anything the agent
		// serves: refusing them keeps one spelling per resource.
		return route, h.fail(w, r, http.StatusBadRequest, "bad_path", "malformed path")
	}
	if path == "/healthz" {
		route = routeHealth
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return route, h.methodNotAllowed(w, r, "GET, HEAD")
		}
		if h.key != nil {
			// Anyone may ask, key or not: such a connection must not
			// stay open to take a slot a client with the key needs.
			hdr["Connection"] = hdrClose
		}
		hdr["Content-Type"] = hdrText
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ok\n")
		return route, http.StatusOK
	}
	if v := r.Header[HeaderName]; len(v) != 1 || v[0] != "1" {
		return route, h.fail(w, r, http.StatusBadRequest, "missing_header", "requests need the header \""+HeaderName+": 1\"")
	}
	if h.key != nil {
		v := r.Header["Authorization"]
		if len(v) != 1 || subtle.ConstantTimeCompare([]byte(v[0]), h.key) != 1 {
			hdr["Www-Authenticate"] = hdrBearer
			return route, h.fail(w, r, http.StatusUnauthorized, "unauthorized", "missing or wrong agent key (Authorization: Bearer KEY)")
		}
	}
	switch {
	case path == "/readyz":
		route = routeReady
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return route, h.methodNotAllowed(w, r, "GET, HEAD")
		}
		return route, h.ready(w, r)
	case path == "/metrics":
		route = routeMetrics
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return route, h.methodNotAllowed(w, r, "GET, HEAD")
		}
		hdr["Content-Type"] = hdrProm
		w.WriteHeader(http.StatusOK)
		h.writeMetrics(w)
		return route, http.StatusOK
	}
	rest, ok := strings.CutPrefix(path, "/v1/token/")
	if !ok {
		return route, h.fail(w, r, http.StatusNotFound, "not_found", "no such endpoint")
	}
	name, suffix, sub := strings.Cut(rest, "/")
	switch {
	case suffix == "" && !sub:
		route = routeToken
	case suffix == "raw":
		route = routeRaw
	case suffix == "rejected":
		route = routeRejected
	default:
		return route, h.fail(w, r, http.StatusNotFound, "not_found", "no such endpoint")
	}
	want := http.MethodGet
	if route == routeRejected {
		want = http.MethodPost
	}
	if r.Method != want {
		return route, h.methodNotAllowed(w, r, want)
	}
	if storage.CheckKey(name) != nil {
		return route, h.fail(w, r, http.StatusBadRequest, "bad_profile", "malformed profile name")
	}
	s, code := h.state(r.Context(), w, r, name)
	if s == nil {
		return route, code
	}
	ctx := &waitCtx{Context: r.Context(), d: h.wait}
	defer ctx.release()
	if route == routeRejected {
		return route, h.rejected(ctx, w, r, s)
	}
	c, code := h.creds(w, r, s)
	if c == nil {
		return route, code
	}
	tok, err := c.Token(ctx)
	if err != nil {
		return route, h.tokenError(w, r, s, err)
	}
	s.served(tok)
	if route == routeRaw {
		hdr["Content-Type"] = hdrText
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, tok.AccessToken.Reveal())
		return route, http.StatusOK
	}
	return route, writeToken(w, tok)
}

// loopbackHost reports whether r may be served given its Host: over a
// Unix socket always (the Host says nothing there), over TCP only when it
// names a loopback address or localhost.
func loopbackHost(r *http.Request) bool {
	if _, tcp := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); !tcp {
		return true
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		host = host[:i] // the port (net.SplitHostPort allocates an error without one)
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && a.IsLoopback()
}

// state returns the profile's state, or writes the refusal and returns nil.
func (h *Handler) state(ctx context.Context, w http.ResponseWriter, r *http.Request, name string) (*profileState, int) {
	if s := h.allowed[name]; s != nil {
		return s, 0
	}
	if !h.all {
		return nil, h.fail(w, r, http.StatusForbidden, "profile_not_allowed", "this agent does not serve that profile")
	}
	if v, ok := h.dynamic.Load(name); ok {
		return v.(*profileState), 0
	}
	// Serving every profile: keep state only for profiles that exist, so
	// that requests for made-up names cannot grow the agent's memory.
	sctx, cancel := context.WithTimeout(ctx, h.wait)
	defer cancel()
	names, err := h.profiles.List(sctx)
	if err != nil {
		return nil, h.tokenError(w, r, nil, fmt.Errorf("agent: listing profiles: %w", err))
	}
	if !slices.Contains(names, name) {
		return nil, h.tokenError(w, r, nil, fmt.Errorf("agent: profile %q: %w", name, storage.ErrNotFound))
	}
	v, _ := h.dynamic.LoadOrStore(name, &profileState{name: name})
	return v.(*profileState), 0
}

// creds returns the profile's Credentials, or writes the failure and
// returns nil.
func (h *Handler) creds(w http.ResponseWriter, r *http.Request, s *profileState) (*credentials.Credentials, int) {
	c, err := h.credsOf(s)
	if err != nil {
		return nil, h.tokenError(w, r, s, err)
	}
	return c, 0
}

// credsOf returns the profile's Credentials, made once.
func (h *Handler) credsOf(s *profileState) (*credentials.Credentials, error) {
	if c := s.creds.Load(); c != nil {
		return c, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.creds.Load(); c != nil {
		return c, nil
	}
	if h.closed.Load() {
		return nil, driver.Wrap(storage.ErrClosed, "agent: shutting down", nil)
	}
	c, err := h.profiles.Get(s.name)
	if err != nil {
		return nil, err
	}
	s.creds.Store(c)
	return c, nil
}

// rejected handles a report of a token a resource server rejected: it
// refreshes once for every reporter of the same token.
func (h *Handler) rejected(ctx context.Context, w http.ResponseWriter, r *http.Request, s *profileState) int {
	if r.ContentLength > MaxBodyBytes {
		return h.fail(w, r, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return h.fail(w, r, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		}
		return h.fail(w, r, http.StatusBadRequest, "bad_body", "reading the request body failed")
	}
	reported, ok := parseReport(r.Header.Get("Content-Type"), body)
	if !ok {
		return h.fail(w, r, http.StatusBadRequest, "bad_body", `the body must be the rejected access token, bare or as {"access_token": "..."}`)
	}
	c, code := h.creds(w, r, s)
	if c == nil {
		return code
	}
	tok, err := c.Token(ctx)
	if err != nil {
		return h.tokenError(w, r, s, err)
	}
	// Only the current token can be reported stale: a reporter of an
	// older one gets the current one, and a made-up token cannot force a
	// refresh. Credentials.Rejected turns many reports of the current
	// token into one refresh, here and in every agent sharing the store,
	// and keeps a token younger than its MinRejectInterval.
	if subtle.ConstantTimeCompare([]byte(reported), []byte(tok.AccessToken.Reveal())) == 1 {
		s.pm.reportsRefreshed.Add(1)
		tok, err = c.Rejected(ctx, tok)
		if err != nil {
			return h.tokenError(w, r, s, err)
		}
	} else {
		s.pm.reportsSuperseded.Add(1)
	}
	s.served(tok)
	return writeToken(w, tok)
}

// parseReport reads the rejected token from a report body: JSON with
// access_token, or the bare token.
func parseReport(contentType string, body []byte) (string, bool) {
	if strings.HasPrefix(contentType, "application/json") {
		var v struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(body, &v) != nil || v.AccessToken == "" {
			return "", false
		}
		return v.AccessToken, true
	}
	tok := strings.TrimSpace(string(body))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", false
	}
	return tok, true
}

func (s *profileState) served(tok *credentials.Token) {
	s.pm.served.Add(1)
	if s.pm.lastToken.Load() != tok {
		s.pm.lastToken.Store(tok)
	}
	if s.fatal.Load() != nil {
		s.fatal.Store(nil)
	}
}

// errorClass maps a library error to a status and a stable code clients
// and metrics can rely on.
func errorClass(err error) (int, string) {
	var pe *credentials.PartialCredentialsError
	var ee *credentials.EndpointError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timeout"
	case errors.Is(err, context.Canceled):
		return 499, "canceled" // the client left; nobody reads this
	case errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, "profile_not_found"
	case errors.As(err, &pe):
		return http.StatusServiceUnavailable, "profile_not_refreshable"
	case errors.Is(err, credentials.ErrReauthRequired), errors.Is(err, credentials.ErrInvalidGrant):
		return http.StatusServiceUnavailable, "reauth_required"
	case errors.Is(err, credentials.ErrInvalidClient):
		return http.StatusServiceUnavailable, "invalid_client"
	case errors.Is(err, credentials.ErrNotTokenEndpoint):
		return http.StatusServiceUnavailable, "not_token_endpoint"
	case errors.As(err, &ee):
		return http.StatusBadGateway, "token_endpoint_failed"
	case errors.Is(err, storage.ErrClosed):
		return http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, storage.ErrReadOnly), errors.Is(err, credentials.ErrUnpersisted):
		return http.StatusServiceUnavailable, "store_unavailable"
	case errors.Is(err, storage.ErrCorrupt):
		return http.StatusInternalServerError, "store_corrupt"
	}
	return http.StatusInternalServerError, "internal"
}

// tokenError answers a failure to get a token. Library errors mask the
// profile's secrets; an endpoint's answer quoted in one is masked here
// again, with the record's own, before its text goes to the client and
// the log: no answer of the agent's may carry a refresh token or client
// secret, whichever layer failed to mask one.
func (h *Handler) tokenError(w http.ResponseWriter, r *http.Request, s *profileState, err error) int {
	code, class := errorClass(err)
	detail := h.maskRecord(r.Context(), s, err)
	if s != nil {
		s.pm.countError(class)
		switch class {
		case "reauth_required", "invalid_client", "not_token_endpoint", "profile_not_refreshable":
			msg := class + ": " + detail
			s.fatal.Store(&msg)
		}
	}
	if code >= 500 && code != http.StatusGatewayTimeout {
		h.log.Warn("agent: no token", "profile", profileName(s), "error", class, "detail", detail)
	}
	return h.writeError(w, code, class, detail)
}

// maskRecord returns err's text with the secrets of s's record masked,
// when err quotes an endpoint's answer (the only text in it a server
// wrote). Reading the record failing, the text is as the library masked it.
func (h *Handler) maskRecord(ctx context.Context, s *profileState, err error) string {
	var ee *credentials.EndpointError
	var c *credentials.Credentials
	if s != nil {
		c = s.creds.Load()
	}
	if c == nil || !errors.As(err, &ee) || ee.StatusCode == 0 {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(h.wait, 2*time.Second))
	defer cancel()
	rec, _, lerr := c.Store().Load(ctx, c.Profile())
	if lerr != nil {
		return err.Error()
	}
	m := secret.NewMasker()
	m.Set("record", rec.AccessToken, rec.RefreshToken, rec.ClientSecret)
	return m.Mask(err.Error())
}

func profileName(s *profileState) string {
	if s == nil {
		return ""
	}
	return s.name
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, class, msg string) int {
	h.log.Debug("agent: request refused", "method", r.Method, "status", code, "error", class)
	if code == http.StatusBadRequest || code == http.StatusUnauthorized || code == http.StatusForbidden {
		// A refused client keeps no idle connection (and no slot of
		// MaxConns) open at the agent.
		w.Header()["Connection"] = hdrClose
	}
	return h.writeError(w, code, class, msg)
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) int {
	w.Header().Set("Allow", allow)
	return h.fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
}

func (h *Handler) writeError(w http.ResponseWriter, code int, class, msg string) int {
	w.Header()["Content-Type"] = hdrJSON
	if code == 499 {
		return code // the client is gone
	}
	w.WriteHeader(code)
	b, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{class, msg})
	w.Write(append(b, '\n'))
	return code
}

// ready answers readiness: the store is reachable, and every served
// profile is there and refreshable (or was just served).
func (h *Handler) ready(w http.ResponseWriter, r *http.Request) int {
	ctx, cancel := context.WithTimeout(r.Context(), min(h.wait, 5*time.Second))
	defer cancel()
	type status struct {
		Ready  bool   `json:"ready"`
		Reason string `json:"reason,omitempty"`
	}
	out := struct {
		Ready    bool              `json:"ready"`
		Store    status            `json:"store"`
		Profiles map[string]status `json:"profiles"`
	}{Ready: true, Store: status{Ready: true}, Profiles: map[string]status{}}
	if h.all {
		if _, err := h.profiles.List(ctx); err != nil {
			out.Ready, out.Store = false, status{Reason: err.Error()}
		}
	}
	h.eachState(func(s *profileState) {
		ps := status{Ready: true}
		c, err := h.credsOf(s)
		if err != nil {
			ps = status{Reason: err.Error()}
		} else if f := s.fatal.Load(); f != nil {
			ps = status{Reason: *f}
		} else if rec, _, err := c.Store().Load(ctx, s.name); err != nil {
			ps = status{Reason: err.Error()}
			if !errors.Is(err, storage.ErrNotFound) {
				out.Store = status{Reason: err.Error()}
			}
		} else if missing := unrefreshable(rec); missing != "" {
			ps = status{Reason: "profile_not_refreshable: missing " + missing}
		}
		if !ps.Ready {
			out.Ready = false
		}
		out.Profiles[s.name] = ps
	})
	code := http.StatusOK
	if !out.Ready {
		code = http.StatusServiceUnavailable
	}
	w.Header()["Content-Type"] = hdrJSON
	w.WriteHeader(code)
	b, _ := json.Marshal(out)
	w.Write(append(b, '\n'))
	return code
}

// unrefreshable names what rec lacks for the refresh-token grant, "" if
// nothing. Records of other schemes are taken as refreshable: their
// Credentials know.
func unrefreshable(rec *storage.Record) string {
	if rec.Scheme != "" {
		return ""
	}
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"client_id", rec.ClientID != ""},
		{"client_secret", rec.ClientSecret != ""},
		{"refresh_token", rec.RefreshToken != ""},
		{"token_url", rec.TokenURL != ""},
	} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	return strings.Join(missing, ", ")
}

// waitCtx bounds a request's wait for a token by WaitTimeout, but makes
// its timer only when something waits: serving a cached token reads no
// context, and context.WithTimeout on every request would be most of the
// agent's allocations.
type waitCtx struct {
	context.Context // the request's
	d               time.Duration
	once            sync.Once
	ctx             context.Context
	cancel          context.CancelFunc
}

func (w *waitCtx) init()                       { w.ctx, w.cancel = context.WithTimeout(w.Context, w.d) }
func (w *waitCtx) Done() <-chan struct{}       { w.once.Do(w.init); return w.ctx.Done() }
func (w *waitCtx) Err() error                  { w.once.Do(w.init); return w.ctx.Err() }
func (w *waitCtx) Deadline() (time.Time, bool) { w.once.Do(w.init); return w.ctx.Deadline() }

// release ends the wait: it stops a timer that was made, and none is made
// after it.
func (w *waitCtx) release() {
	w.once.Do(func() {})
	if w.cancel != nil {
		w.cancel()
	}
}
