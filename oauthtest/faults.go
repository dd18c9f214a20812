package oauthtest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is a failure the server injects into token requests instead of
// answering them.
type Fault int

const (
	// FaultServerError answers 500 {"error":"server_error"}.
	FaultServerError Fault = iota + 1
	// FaultUnavailable answers 503 {"error":"temporarily_unavailable"} with Retry-After: 1.
	FaultUnavailable
	// FaultTimeout sends nothing until the client gives up, the server
	// closes or Options.HangLimit passes, then drops the connection.
	FaultTimeout
	// FaultInvalidGrant answers 400 {"error":"invalid_grant"} without
	// touching any token, as a provider that lost its state would.
	FaultInvalidGrant
	// FaultMalformedJSON answers 200 with a truncated JSON body.
	FaultMalformedJSON
)

func (f Fault) String() string {
	switch f {
	case FaultServerError:
		return "server_error"
	case FaultUnavailable:
		return "unavailable"
	case FaultTimeout:
		return "timeout"
	case FaultInvalidGrant:
		return "invalid_grant"
	case FaultMalformedJSON:
		return "malformed_json"
	}
	return "none"
}

// Stage is a point in the handling of a refresh_token grant where
// HoldRefreshes can stop it.
type Stage int

const (
	// BeforeRotate is after the client authenticated and before the
	// refresh token is looked at: a client killed here changed nothing.
	BeforeRotate Stage = iota + 1
	// AfterRotate is after the server rotated the refresh token and
	// issued the access token, before the response is written: a client
	// killed here has lost the new refresh token.
	AfterRotate
)

func (st Stage) String() string {
	switch st {
	case BeforeRotate:
		return "before-rotate"
	case AfterRotate:
		return "after-rotate"
	}
	return "unknown-stage"
}

// Stats counts what the server did since it started or ResetStats.
type Stats struct {
	TokenCalls      int64 // requests to any token endpoint, developer tokens included
	RefreshCalls    int64 // refresh_token grants, successful or not
	Issued          int64 // access tokens issued
	ReuseDetections int64 // rotated refresh tokens presented after their grace; each revoked a family
	Revocations     int64 // tokens or families revoked by revocation requests or Revoke
	Failures        int64 // injected faults
}

type counters struct {
	tokenCalls, refreshCalls, issued, reuse, revocations, failures atomic.Int64
}

// Stats returns the counters. Each is read atomically; the set is not a
// snapshot across counters while requests are in flight.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		TokenCalls:      c.tokenCalls.Load(),
		RefreshCalls:    c.refreshCalls.Load(),
		Issued:          c.issued.Load(),
		ReuseDetections: c.reuse.Load(),
		Revocations:     c.revocations.Load(),
		Failures:        c.failures.Load(),
	}
}

// ResetStats sets every counter to zero.
func (s *Server) ResetStats() {
	c := &s.stats
	for _, v := range []*atomic.Int64{&c.tokenCalls, &c.refreshCalls, &c.issued, &c.reuse, &c.revocations, &c.failures} {
		v.Store(0)
	}
}

// control holds what a test changes while the server runs.
type control struct {
	delay atomic.Int64 // time.Duration

	mu     sync.Mutex
	faults []Fault
	holds  [AfterRotate + 1]*Hold
}

func (c *control) latency() time.Duration { return time.Duration(c.delay.Load()) }

// SetLatency delays every later token and revocation request by d (real
// time); 0 turns it off.
func (s *Server) SetLatency(d time.Duration) { s.ctl.delay.Store(int64(d)) }

// FailNext makes the next n token requests fail with kind. Calls queue up in
// order, so a test can script "500, then a timeout, then success".
// Revocation and resource requests are never failed.
func (s *Server) FailNext(n int, kind Fault) {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	for range n {
		s.ctl.faults = append(s.ctl.faults, kind)
	}
}

// ClearFaults drops the faults not injected yet.
func (s *Server) ClearFaults() {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	s.ctl.faults = nil
}

func (c *control) nextFault() Fault {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.faults) == 0 {
		return 0
	}
	f := c.faults[0]
	c.faults = c.faults[1:]
	return f
}

// Hold stops refresh_token grants at one Stage until the test lets them go
// on (Release) or kills them (Drop).
type Hold struct {
	s       *Server
	at      Stage
	arrived chan struct{}
	once    sync.Once
	dropped bool          // written before ended is closed
	ended   chan struct{} // closed by Release or Drop
}

// HoldRefreshes stops every refresh_token grant that reaches stage at until
// the Hold is released or dropped. A new hold for the same stage replaces
// the old one for requests that arrive later.
func (s *Server) HoldRefreshes(at Stage) *Hold {
	h := &Hold{s: s, at: at, arrived: make(chan struct{}), ended: make(chan struct{})}
	s.ctl.mu.Lock()
	s.ctl.holds[at] = h
	s.ctl.mu.Unlock()
	return h
}

// Arrived yields once for every request that reaches the hold; it is
// unbuffered, so a receive means that request is held now. A test that does
// not care need not read it.
func (h *Hold) Arrived() <-chan struct{} { return h.arrived }

// Release lets the held requests, and any that arrive later, go on. It is
// idempotent, and a no-op after Drop.
func (h *Hold) Release() { h.end(false) }

// Drop aborts the held requests as a dying client would be cut off: the
// server closes their connections without an answer. At BeforeRotate that
// changes nothing; at AfterRotate the rotation stands and its result is
// lost. Later requests go on. Unlike canceling the client and releasing,
// Drop does not depend on when the server notices that the client went
// away, so tests stay deterministic.
func (h *Hold) Drop() { h.end(true) }

func (h *Hold) end(drop bool) {
	h.once.Do(func() {
		h.s.ctl.mu.Lock()
		if h.s.ctl.holds[h.at] == h {
			h.s.ctl.holds[h.at] = nil
		}
		h.s.ctl.mu.Unlock()
		h.dropped = drop
		close(h.ended)
	})
}

// hold blocks while a Hold is set for stage at. When the request is not to
// go on (dropped, its client gone, the server closing) it aborts the
// connection: net/http recovers http.ErrAbortHandler without logging.
func (s *Server) hold(ctx context.Context, at Stage) {
	s.ctl.mu.Lock()
	h := s.ctl.holds[at]
	s.ctl.mu.Unlock()
	if h == nil {
		return
	}
	arrived := h.arrived
	for {
		select {
		case arrived <- struct{}{}:
			arrived = nil // announced once; now wait for the end
			continue
		case <-h.ended:
			if !h.dropped {
				return
			}
		case <-ctx.Done():
		case <-s.done:
		}
		panic(http.ErrAbortHandler)
	}
}

// sleep waits d of real time; false when the client gave up or the server
// closed first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

// beforeToken applies latency and the next fault to a token request. It
// reports whether the request goes on; if not, the response is done.
func (s *Server) beforeToken(w http.ResponseWriter, r *http.Request) bool {
	if !s.sleep(r.Context(), s.ctl.latency()) {
		s.writeError(w, unavailable("request canceled or server closing"))
		return false
	}
	f := s.ctl.nextFault()
	if f == 0 {
		return true
	}
	s.stats.failures.Add(1)
	if s.opts.Logger != nil {
		s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "oauthtest: injected fault",
			slog.String("path", r.URL.Path), slog.String("fault", f.String()))
	}
	switch f {
	case FaultUnavailable:
		w.Header().Set("Retry-After", "1")
		s.writeError(w, unavailable("injected fault"))
	case FaultTimeout:
		s.sleep(r.Context(), s.opts.HangLimit)
		panic(http.ErrAbortHandler) // see hold
	case FaultInvalidGrant:
		s.writeError(w, invalidGrant("injected fault"))
	case FaultMalformedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"access_token":"`)
	default: // FaultServerError, and any value a test made up
		s.writeError(w, errorf(http.StatusInternalServerError, "server_error", "injected fault"))
	}
	return false
}
