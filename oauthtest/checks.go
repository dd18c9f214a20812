package oauthtest

import (
	"bytes"
	"strings"
	"time"
)

// What a checker asks after a run (a simulation, a storm): which refresh
// token of a grant is live, whether a token was valid when a client handed
// it out, how often each refresh token was presented, and every reuse the
// server detected. None of the answers carries a token, so they can be
// printed.

// Result is what the server did with one refresh_token grant.
type Result string

const (
	// ResultRotated: the current refresh token was presented and rotated.
	ResultRotated Result = "rotated"
	// ResultRefreshed: the current refresh token was presented; the
	// server does not rotate (Options.Rotate is off).
	ResultRefreshed Result = "refreshed"
	// ResultGrace: a rotated token was presented within ReuseGrace and
	// answered with the family's current successor.
	ResultGrace Result = "grace"
	// ResultReuse: a rotated token was presented after its grace; the
	// family is revoked.
	ResultReuse Result = "reuse-detected"
	// ResultInvalid: an unknown or revoked token, or another client's.
	ResultInvalid Result = "invalid"
	// ResultFault: a fault injected before the token was looked at
	// answered the call (see RefreshEvent.Fault); nothing changed.
	ResultFault Result = "fault"
	// ResultUnanswered: the request ended before a result (malformed,
	// failed client authentication, a dropped hold).
	ResultUnanswered Result = "unanswered"
)

// RefreshEvent is one refresh_token grant the server handled.
type RefreshEvent struct {
	Call   int64     // the token call's number (Stats.TokenCalls when it arrived)
	At     time.Time // when it arrived, on the server's clock
	Family string    // the grant's id (not a credential); empty when the token was unknown
	// Generation is the presented token's place in its family's chain:
	// 0 for the token that started the grant, n for its n-th successor.
	Generation int
	Result     Result
	// Fault is the fault injected into the call, if any: before the token
	// was looked at (Result is ResultFault), or after the server answered
	// it (FaultLateReply, FaultTruncatedAfterRotate: the result stands and
	// the client does not learn it).
	Fault Fault
	// Answered: the whole successful answer left the server while its
	// client was still waiting, as far as the server can tell. A rotation
	// whose answer was not delivered (a late, slow or truncated reply, a
	// client that gave up, a dropped hold) left a successor that no client
	// knows.
	Answered bool
}

// Reuse is one reuse detection: a rotated refresh token presented after
// its grace period, which revoked its family.
type Reuse struct {
	At         time.Time // server clock
	Family     string
	Generation int // of the token presented
	Current    int // the family's current generation at the time
}

// RefreshLog returns every refresh_token grant handled since the server
// started, in the order they arrived.
func (s *Server) RefreshLog() []RefreshEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RefreshEvent(nil), s.refreshLog...)
}

// Reuses returns every reuse detection since the server started.
func (s *Server) Reuses() []Reuse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Reuse(nil), s.reuses...)
}

// newRefreshEvent starts the record of a refresh_token grant.
func (s *Server) newRefreshEvent(call int64, presented string) *RefreshEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := &RefreshEvent{Call: call, At: s.opts.Now(), Result: ResultUnanswered, Generation: -1}
	if rt, ok := s.refresh[presented]; ok {
		ev.Family, ev.Generation = rt.fam.id, rt.gen
	}
	return ev
}

func (s *Server) logRefresh(ev *RefreshEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLog = append(s.refreshLog, *ev)
}

// Grant describes the family a refresh token belongs to.
type Grant struct {
	Family string // the grant's id, as in RefreshEvent and Reuse
	// Generation is the given token's place in the chain; Current is the
	// live one's (Generation == Current: the given token is live).
	Generation, Current int
	Revoked             bool
	RevokedAt           time.Time // server clock
}

// GrantOf returns the grant refreshToken belongs to; ok is false when the
// server never issued it.
func (s *Server) GrantOf(refreshToken string) (g Grant, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[refreshToken]
	if !ok {
		return Grant{}, false
	}
	f := rt.fam
	return Grant{Family: f.id, Generation: rt.gen, Current: f.gens - 1, Revoked: f.revoked, RevokedAt: f.revokedAt}, true
}

// CurrentRefresh returns the live refresh token of the grant refreshToken
// belongs to (itself, when it is the live one): the only one the server
// will rotate next. ok is false when the token is unknown or its grant
// revoked.
func (s *Server) CurrentRefresh(refreshToken string) (current string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[refreshToken]
	if !ok || rt.fam.revoked {
		return "", false
	}
	return rt.fam.current, true
}

// IsCurrentRefresh reports whether refreshToken is the live refresh token
// of a grant that is not revoked.
func (s *Server) IsCurrentRefresh(refreshToken string) bool {
	cur, ok := s.CurrentRefresh(refreshToken)
	return ok && cur == refreshToken
}

// ValidAt reports whether accessToken was valid at time t on the server's
// clock: issued by this server at or before t, not expired at t, and not
// revoked (alone or with its family) at or before t.
func (s *Server) ValidAt(accessToken string, t time.Time) bool {
	key, ok := s.accessKey(accessToken)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[key]
	if !ok || t.Before(at.iat) || !t.Before(at.exp) {
		return false
	}
	if at.revoked && !t.Before(at.revokedAt) {
		return false
	}
	return at.fam == nil || !at.fam.revoked || t.Before(at.fam.revokedAt)
}

// TimesOf returns when the server issued an access token and when it
// expires, on the server's clock; ok is false for a token it never issued.
func (s *Server) TimesOf(accessToken string) (issued, expiry time.Time, ok bool) {
	key, ok := s.accessKey(accessToken)
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[key]
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	return at.iat, at.exp, true
}

// LiveAccessTokens counts the access tokens valid now.
func (s *Server) LiveAccessTokens() int {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, at := range s.access {
		if !at.revoked && (at.fam == nil || !at.fam.revoked) && now.Before(at.exp) {
			n++
		}
	}
	return n
}

// ContainsToken reports whether b contains any access, refresh or
// developer token the server issued, or the secret of a confidential
// client: a test looking for secrets in logs or error text asks it.
func (s *Server) ContainsToken(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for rt := range s.refresh {
		if bytes.Contains(b, []byte(rt)) {
			return true
		}
	}
	for _, at := range s.access {
		// The signature alone is enough to find a JWT cut short or
		// split across log attributes.
		sig := at.value[strings.LastIndexByte(at.value, '.')+1:]
		if bytes.Contains(b, []byte(at.value)) || bytes.Contains(b, []byte(sig)) {
			return true
		}
	}
	for dt := range s.devTokens {
		if bytes.Contains(b, []byte(dt)) {
			return true
		}
	}
	for _, sec := range s.clients {
		if sec != "" && bytes.Contains(b, []byte(sec)) {
			return true
		}
	}
	return false
}
