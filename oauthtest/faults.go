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

// Fault is a failure the server injects into a token request. The first
// five replace the answer before the server looks at the request, so
// nothing changes on the server (a refresh token is not rotated); the
// *AfterRotate ones and FaultLateReply let the server do its work (rotate,
// issue) and then keep the answer from the client, which is what makes a
// client that retries with the token it sent dangerous.
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
	// FaultLateReply lets the server rotate and issue, then sends nothing
	// until the client gives up (its timeout), the server closes or
	// Options.HangLimit passes, then drops the connection: the reply that
	// would have arrived after the client's timeout.
	FaultLateReply
	// FaultTruncatedAfterRotate lets the server rotate and issue, then
	// answers 200 with the JSON body cut off before the tokens.
	FaultTruncatedAfterRotate
	// FaultSlowReply lets the server rotate and issue, then holds the
	// answer for Options.SlowReply before sending it: a client that waits
	// that long gets it, one whose timeout is shorter does not (and the
	// rotation stands). Meanwhile the client still holds whatever lease it
	// took, which is what exposes a waiter that does not honour it.
	FaultSlowReply
)

// after reports whether f lets the server do its work first.
func (f Fault) after() bool {
	return f == FaultLateReply || f == FaultTruncatedAfterRotate || f == FaultSlowReply
}

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
	case FaultLateReply:
		return "late_reply"
	case FaultTruncatedAfterRotate:
		return "truncated_after_rotate"
	case FaultSlowReply:
		return "slow_reply"
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
	fn     func(Call) Fault
	holds  [AfterRotate + 1]*Hold
}

// Call describes a token request to a FaultFunc.
type Call struct {
	// N is the request's number among token requests since the server
	// started or ResetStats (Stats.TokenCalls when it arrived), from 1.
	N int64
	// Grant is the grant_type, or "developer" for developer-token
	// redemption.
	Grant string
	// Header is the request's header, for tests that aim faults at one
	// client; do not change it.
	Header http.Header
}

// SetFaultFunc makes the server ask fn which fault, if any, to inject into
// each later token request that FailNext has not already scripted; 0 means
// none. A simulation draws the answer from a seeded source, so that the
// same seed yields the same faults for the same sequence of requests. fn
// runs on the request's goroutine, concurrently with other requests; nil
// removes it.
func (s *Server) SetFaultFunc(fn func(Call) Fault) {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	s.ctl.fn = fn
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

func (c *control) nextFault(call Call) Fault {
	c.mu.Lock()
	if len(c.faults) > 0 {
		f := c.faults[0]
		c.faults = c.faults[1:]
		c.mu.Unlock()
		return f
	}
	fn := c.fn
	c.mu.Unlock()
	if fn == nil {
		return 0
	}
	return fn(call)
}

// Hold stops refresh_token grants at one Stage until the test lets them go
// on (Release) or kills them (Drop).
type Hold struct {
	s       *Server
	at      Stage
	match   func(*http.Request) bool // nil: every request
	arrived chan struct{}
	once    sync.Once
	dropped bool          // written before ended is closed
	ended   chan struct{} // closed by Release or Drop
}

// HoldRefreshes stops every refresh_token grant that reaches stage at until
// the Hold is released or dropped. A new hold for the same stage replaces
// the old one for requests that arrive later.
func (s *Server) HoldRefreshes(at Stage) *Hold { return s.HoldMatching(at, nil) }

// HoldMatching is HoldRefreshes for the requests match accepts only (say,
// those of one client process, told apart by a header); the others go on.
// A nil match holds every request.
func (s *Server) HoldMatching(at Stage, match func(*http.Request) bool) *Hold {
	h := &Hold{s: s, at: at, match: match, arrived: make(chan struct{}), ended: make(chan struct{})}
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
func (s *Server) hold(r *http.Request, at Stage) {
	s.ctl.mu.Lock()
	h := s.ctl.holds[at]
	s.ctl.mu.Unlock()
	if h == nil || (h.match != nil && !h.match(r)) {
		return
	}
	ctx := r.Context()
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

// beforeToken applies latency and the next fault to a token request. done
// means the response is written (a fault answered it, or the client went
// away); otherwise the request goes on, and a fault that must strike after
// the server did its work comes back as after, for answer.
func (s *Server) beforeToken(w http.ResponseWriter, r *http.Request, call Call, ev *RefreshEvent) (f Fault, done bool) {
	if !s.sleep(r.Context(), s.ctl.latency()) {
		s.writeError(w, unavailable("request canceled or server closing"))
		return 0, true
	}
	f = s.ctl.nextFault(call)
	if f == 0 {
		return 0, false
	}
	if ev != nil {
		// Set before the fault acts: a hang ends in a panic.
		ev.Fault = f
		if !f.after() {
			ev.Result = ResultFault
		}
	}
	s.stats.failures.Add(1)
	if s.opts.Logger != nil {
		s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "oauthtest: injected fault",
			slog.String("path", r.URL.Path), slog.String("fault", f.String()))
	}
	if f.after() {
		return f, false
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
	return f, true
}

// answer writes a successful token response, unless after (a fault drawn
// by beforeToken) keeps it from the client, and reports whether the whole
// answer went out.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, resp *tokenResponse, after Fault) bool {
	switch after {
	case FaultSlowReply:
		if !s.sleep(r.Context(), s.opts.SlowReply) {
			panic(http.ErrAbortHandler) // the client gave up: see hold
		}
	case FaultLateReply:
		s.sleep(r.Context(), s.opts.HangLimit)
		panic(http.ErrAbortHandler) // see hold
	case FaultTruncatedAfterRotate:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"access_token":"`)
		return false
	}
	writeJSON(w, http.StatusOK, resp)
	// As far as the server can tell: the answer left, and the client had
	// not given up.
	return http.NewResponseController(w).Flush() == nil && r.Context().Err() == nil
}
