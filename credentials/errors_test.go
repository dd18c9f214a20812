package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// endpointAnswering returns Credentials whose token endpoint answers with
// handle, and a counter of the calls it got.
func endpointAnswering(t *testing.T, handle http.HandlerFunc) (*credentials.Credentials, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	st := storage.NewStore(memory.New(nil))
	rec := &storage.Record{Profile: "p", ClientID: "cid", ClientSecret: "cs", TokenURL: srv.URL + "/token"}
	rec.Grant("rt")
	if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
		t.Fatal(err)
	}
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", RetryBackoff: 1, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, &calls
}

// Issue 12, item 4: one endpoint error type whose class is told by
// errors.Is and Temporary, never by its text; a page that is not a token
// endpoint says so and is not retried.
func TestEndpointErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		ctype     string
		body      string
		is        error
		temporary bool
		calls     int64 // 1 + MaxRetries when temporary
		text      string
	}{
		{"invalid_grant", 400, "application/json", `{"error":"invalid_grant","error_description":"revoked"}`, credentials.ErrInvalidGrant, false, 1, "invalid_grant: revoked"},
		{"invalid_client", 401, "application/json", `{"error":"invalid_client"}`, credentials.ErrInvalidClient, false, 1, "invalid_client"},
		{"HTML login page", 200, "text/html; charset=utf-8", `<html><body>Sign in</body></html>`, credentials.ErrNotTokenEndpoint, false, 1, "text/html"},
		{"404 page", 404, "text/html", `<h1>Not Found</h1>`, credentials.ErrNotTokenEndpoint, false, 1, "Not Found"},
		{"JSON without a token", 200, "application/json", `{"status":"ok"}`, credentials.ErrNotTokenEndpoint, false, 1, "without access_token"},
		{"truncated JSON", 200, "application/json", `{"access_token":"at-1","refresh_tok`, credentials.ErrMalformedResponse, true, 3, "malformed"},
		{"proxy 503", 503, "text/html", `<h1>Service Unavailable</h1>`, nil, true, 3, "503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, calls := endpointAnswering(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			})
			_, err := c.Token(context.Background())
			var ee *credentials.EndpointError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want an *EndpointError", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not match %v", err, tc.is)
			}
			if ee.Temporary() != tc.temporary || calls.Load() != tc.calls {
				t.Errorf("temporary %v after %d calls, want %v after %d", ee.Temporary(), calls.Load(), tc.temporary, tc.calls)
			}
			if !strings.Contains(err.Error(), tc.text) || strings.Contains(err.Error(), "502") {
				t.Errorf("error text %q lacks %q (or invents a 502)", err, tc.text)
			}
			if ee.StatusCode != tc.status && tc.name != "JSON without a token" {
				t.Errorf("status %d, want %d", ee.StatusCode, tc.status)
			}
		})
	}
}

// The transport's error stays reachable: a caller can ask net.Error
// whether it was a timeout, as with x/oauth2's errors.
func TestEndpointErrorUnwrapsTransportCause(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connection refused
	st := storage.NewStore(memory.New(nil))
	rec := &storage.Record{Profile: "p", ClientID: "cid", ClientSecret: "cs", TokenURL: "http://" + addr + "/token"}
	rec.Grant("rt")
	st.Replace(context.Background(), nil, "", rec)
	c, _ := credentials.New(credentials.Config{Store: st, Profile: "p", MaxRetries: -1})
	defer c.Close()
	_, err = c.Token(context.Background())
	var ee *credentials.EndpointError
	var opErr *net.OpError
	if !errors.As(err, &ee) || ee.StatusCode != 0 || !ee.Temporary() || !errors.As(err, &opErr) {
		t.Fatalf("got %v; want an EndpointError without status whose cause is the *net.OpError", err)
	}
}

// An endpoint that answers 429 with Retry-After is paused by every profile
// of the process, and each profile retries at most once (issue 19); the
// number of refreshes in flight per endpoint is bounded.
func TestThrottledEndpointIsPaused(t *testing.T) {
	var calls, throttled, inFlight, maxInFlight atomic.Int64
	var until atomic.Int64
	until.Store(time.Now().Add(700 * time.Millisecond).UnixNano())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		if time.Now().UnixNano() < until.Load() {
			throttled.Add(1)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":"slow_down"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","expires_in":3600}`, calls.Load())
	}))
	defer srv.Close()
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	const profiles = 20
	for i := range profiles {
		rec := &storage.Record{Profile: fmt.Sprintf("p%d", i), ClientID: "cid", ClientSecret: "cs", TokenURL: srv.URL + "/token"}
		rec.Grant(fmt.Sprintf("rt-%d", i))
		st.Replace(context.Background(), nil, "", rec)
	}
	ps, err := credentials.NewProfiles(credentials.Config{Store: st, RetryBackoff: 10 * time.Millisecond,
		Limiter: &credentials.EndpointLimiter{MaxConcurrent: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	errs := make(chan error, profiles)
	for i := range profiles {
		go func() { _, err := ps.Token(context.Background(), fmt.Sprintf("p%d", i)); errs <- err }()
	}
	for range profiles {
		if err := <-errs; err != nil {
			t.Errorf("Token: %v", err)
		}
	}
	if m := maxInFlight.Load(); m > 3 {
		t.Errorf("%d refreshes in flight at once, limit 3", m)
	}
	// Before the first 429 came back at most 3 requests were out; after it
	// every profile waited for the pause.
	if n := throttled.Load(); n > 3 {
		t.Errorf("%d requests answered 429: the pause was not shared", n)
	}
	if n := calls.Load(); n > profiles+3 {
		t.Errorf("%d endpoint calls for %d profiles", n, profiles)
	}
}
