package oauthtest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The faults that strike after the server did its work: the refresh token
// is rotated although the client never learns its successor.
func TestFaultsAfterRotation(t *testing.T) {
	for _, f := range []Fault{FaultLateReply, FaultTruncatedAfterRotate} {
		t.Run(f.String(), func(t *testing.T) {
			s := newTestServer(t, Options{Rotate: true, HangLimit: time.Hour})
			rt := s.IssueRefreshToken(clientID)
			s.FailNext(1, f)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			r, err := do(t, ctx, s, req{path: "/oauth2/token", form: refreshForm(rt)})
			switch f {
			case FaultLateReply:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("late reply: %v, want the client's timeout", err)
				}
			case FaultTruncatedAfterRotate:
				if err == nil || r.status != 200 {
					t.Fatalf("truncated: status %d err %v, want 200 and a body that does not decode", r.status, err)
				}
			}
			if s.IsCurrentRefresh(rt) || s.ValidRefresh(rt) {
				t.Fatal("the presented token must have been rotated")
			}
			g, _ := s.GrantOf(rt)
			if g.Generation != 0 || g.Current != 1 {
				t.Fatalf("grant %+v, want generation 0 of current 1", g)
			}
			// Presenting it again is the reuse a client retrying with what
			// it sent would commit.
			if r := refresh(t, s, rt); r.str("error") != "invalid_grant" {
				t.Fatalf("retry: %d %v", r.status, r.body)
			}
			if st := s.Stats(); st.ReuseDetections != 1 || st.Failures != 1 {
				t.Fatalf("stats %+v", st)
			}
			log := s.RefreshLog()
			if len(log) != 2 || log[0].Result != ResultRotated || log[0].Fault != f || log[0].Answered || log[1].Result != ResultReuse || log[1].Generation != 0 {
				t.Fatalf("refresh log %+v", log)
			}
			if reuses := s.Reuses(); len(reuses) != 1 || reuses[0].Generation != 0 || reuses[0].Current != 1 {
				t.Fatalf("reuses %+v", reuses)
			}
		})
	}
}

func TestFaultFunc(t *testing.T) {
	s := newTestServer(t, Options{Rotate: true})
	rt := s.IssueRefreshToken(clientID)
	var seen []int64
	s.SetFaultFunc(func(c Call) Fault {
		seen = append(seen, c.N) // requests here are sequential
		if c.Grant != "refresh_token" {
			t.Errorf("grant %q", c.Grant)
		}
		if c.N%2 == 1 {
			return FaultServerError
		}
		return 0
	})
	s.FailNext(1, FaultUnavailable) // scripted faults come first
	if r := refresh(t, s, rt); r.status != 503 {
		t.Fatalf("status %d", r.status)
	}
	if r := refresh(t, s, rt); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if r := refresh(t, s, s.mustCurrent(t, rt)); r.status != 500 {
		t.Fatalf("status %d", r.status)
	}
	s.SetFaultFunc(nil)
	if r := refresh(t, s, s.mustCurrent(t, rt)); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if len(seen) != 2 || seen[0] != 2 || seen[1] != 3 {
		t.Fatalf("fault func saw calls %v, want [2 3]", seen)
	}
	log := s.RefreshLog()
	want := []Result{ResultFault, ResultRotated, ResultFault, ResultRotated}
	for i, ev := range log {
		if ev.Result != want[i] || ev.Call != int64(i+1) {
			t.Fatalf("log[%d] = %+v, want %s", i, ev, want[i])
		}
	}
	if log[3].Generation != 1 || log[0].Fault != FaultUnavailable {
		t.Fatalf("log %+v", log)
	}
}

func (s *Server) mustCurrent(t *testing.T, rt string) string {
	t.Helper()
	cur, ok := s.CurrentRefresh(rt)
	if !ok {
		t.Fatal("grant revoked")
	}
	return cur
}

func TestValidAtAndRevocationTimes(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newTestServer(t, Options{Rotate: true, AccessTTL: 10 * time.Second, Now: clock.Now})
	rt := s.IssueRefreshToken(clientID)
	t0 := clock.Now()
	at := refresh(t, s, rt).str("access_token")
	if !s.ValidAt(at, t0) || s.ValidAt(at, t0.Add(-time.Second)) || s.ValidAt(at, t0.Add(11*time.Second)) {
		t.Fatal("ValidAt around issue and expiry")
	}
	if s.LiveAccessTokens() != 1 {
		t.Fatalf("live %d", s.LiveAccessTokens())
	}
	clock.Add(2 * time.Second)
	refresh(t, s, rt) // reuse: the family goes, from now on
	if !s.ValidAt(at, t0.Add(time.Second)) || s.ValidAt(at, clock.Now()) || s.Valid(at) {
		t.Fatal("a token of a revoked family is valid before the revocation only")
	}
	if s.LiveAccessTokens() != 0 {
		t.Fatalf("live %d after revocation", s.LiveAccessTokens())
	}
	if _, ok := s.CurrentRefresh(rt); ok {
		t.Fatal("CurrentRefresh of a revoked grant")
	}
	if iat, exp, ok := s.TimesOf(at); !ok || !iat.Equal(t0) || exp.Before(t0.Add(10*time.Second)) {
		t.Fatalf("TimesOf %v %v %v", iat, exp, ok)
	}
}

func TestContainsToken(t *testing.T) {
	s := newTestServer(t, Options{Rotate: true})
	rt := s.IssueRefreshToken(clientID)
	r := refresh(t, s, rt)
	at := r.str("access_token")
	for _, leak := range []string{rt, r.str("refresh_token"), at, at[strings.LastIndexByte(at, '.')+1:], clientSecret} {
		if !s.ContainsToken([]byte("log line: " + leak + " end")) {
			t.Errorf("not found: %.6s…", leak)
		}
	}
	if s.ContainsToken([]byte("profile=default expiry=2030 refresh_token=***** client_id=app")) {
		t.Error("found a token in a clean line")
	}
}

// HoldMatching holds only the requests it matches; the others go on.
func TestHoldMatching(t *testing.T) {
	s := newTestServer(t, Options{Rotate: true})
	mine, other := s.IssueRefreshToken(clientID), s.IssueRefreshToken(clientID)
	h := s.HoldMatching(AfterRotate, func(r *http.Request) bool { return r.Header.Get("X-Replica") == "victim" })
	defer h.Release()
	var done atomic.Bool
	go func() {
		rq, _ := http.NewRequest(http.MethodPost, s.TokenURL(), strings.NewReader(refreshForm(mine).Encode()))
		rq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rq.Header.Set("X-Replica", "victim")
		if resp, err := http.DefaultClient.Do(rq); err == nil {
			resp.Body.Close()
		}
		done.Store(true)
	}()
	<-h.Arrived()
	if r := refresh(t, s, other); r.status != 200 {
		t.Fatalf("unmatched request: %d", r.status)
	}
	if done.Load() || s.IsCurrentRefresh(mine) {
		t.Fatal("the matched request must be held after its rotation")
	}
	h.Drop()
	deadline := time.Now().Add(5 * time.Second)
	for !done.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !done.Load() {
		t.Fatal("dropped request did not end")
	}
}

// A call that hangs and is cut off is in the log with its fault.
func TestRefreshLogKeepsHungCalls(t *testing.T) {
	s := newTestServer(t, Options{Rotate: true, HangLimit: time.Hour})
	s.FailNext(1, FaultTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	do(t, ctx, s, req{path: "/oauth2/token", form: refreshForm(s.IssueRefreshToken(clientID))})
	deadline := time.Now().Add(5 * time.Second)
	for len(s.RefreshLog()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if log := s.RefreshLog(); len(log) != 1 || log[0].Fault != FaultTimeout || log[0].Result != ResultFault {
		t.Fatalf("log %+v", log)
	}
}

// A slow reply arrives for a client that waits, and not for one that does
// not; the rotation stands either way.
func TestSlowReply(t *testing.T) {
	s := newTestServer(t, Options{Rotate: true, SlowReply: 100 * time.Millisecond})
	rt := s.IssueRefreshToken(clientID)
	s.FailNext(1, FaultSlowReply)
	start := time.Now()
	r := refresh(t, s, rt)
	if r.status != 200 || r.str("refresh_token") == "" || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("waiting client: %d after %v", r.status, time.Since(start))
	}
	next := r.str("refresh_token")
	s.FailNext(1, FaultSlowReply)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := do(t, ctx, s, req{path: "/oauth2/token", form: refreshForm(next)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient client: %v", err)
	}
	if s.IsCurrentRefresh(next) {
		t.Fatal("the rotation must stand")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.RefreshLog()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	log := s.RefreshLog()
	if len(log) != 2 || !log[0].Answered || log[1].Answered || log[1].Result != ResultRotated || log[1].Fault != FaultSlowReply {
		t.Fatalf("log %+v", log)
	}
}
