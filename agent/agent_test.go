package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/agent"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	_ "github.com/tokencache/tokencache/storage/memory"
)

const (
	clientID     = "agent-test"
	clientSecret = "client-secret-never-served"
)

var storeSeq atomic.Int64

// fixture is an agent over a memory store with profiles "default" and
// "other", an oauthtest server that rotates refresh tokens, and a client.
type fixture struct {
	idp      *oauthtest.Server
	store    *storage.Store
	profiles *credentials.Profiles
	h        *agent.Handler
	srv      *http.Server
	base     string // http://localhost or http://127.0.0.1:PORT
	client   *http.Client
	key      string
	refresh  map[string]string // profile -> initial refresh token
}

type fixtureOpts struct {
	tcp     bool
	key     string
	allow   []string
	opts    oauthtest.Options
	expired bool // stored access tokens expired: the first request refreshes
	// headerTimeout, when set, replaces the server's ReadHeaderTimeout.
	headerTimeout time.Duration
	wait          time.Duration // Config.WaitTimeout; default 10 s
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{key: o.key, refresh: map[string]string{}}
	f.idp = oauthtest.NewServer(o.opts)
	t.Cleanup(f.idp.Close)
	f.idp.AddClient(clientID, clientSecret)
	st, err := storage.Open(ctx, fmt.Sprintf("memory://agent-test-%d", storeSeq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	f.store = st
	for _, p := range []string{"default", "other"} {
		rt := f.idp.IssueRefreshToken(clientID)
		f.refresh[p] = rt
		rec := &storage.Record{Profile: p, ClientID: clientID, ClientSecret: clientSecret,
			RefreshToken: secret.Secret(rt), TokenURL: f.idp.TokenURL()}
		if o.expired {
			rec.AccessToken, rec.Expiry = "expired-access-token", time.Now().Add(-time.Minute)
		}
		if _, err := st.Replace(ctx, nil, "", rec); err != nil {
			t.Fatal(err)
		}
	}
	f.profiles, err = credentials.NewProfiles(credentials.Config{Store: st, JournalDir: "-", PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	allow := o.allow
	if allow == nil {
		allow = []string{"default"}
	}
	if o.wait == 0 {
		o.wait = 10 * time.Second
	}
	f.h, err = agent.New(agent.Config{Profiles: f.profiles, Allow: allow, Key: secret.Secret(o.key), WaitTimeout: o.wait})
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	if o.tcp {
		l, err = agent.ListenLoopback("127.0.0.1:0")
		f.base = "http://" + l.Addr().String()
	} else {
		sock := filepath.Join(t.TempDir(), "agent.sock")
		l, err = agent.ListenUnix(sock)
		f.base = "http://localhost"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	f.srv = agent.NewServer(f.h, 10*time.Second, nil)
	if o.headerTimeout > 0 {
		f.srv.ReadHeaderTimeout = o.headerTimeout
	}
	go f.srv.Serve(l)
	f.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		f.srv.Close()
		if err := f.h.Close(); err != nil {
			t.Errorf("Handler.Close: %v", err)
		}
		f.profiles.Close()
		f.store.Close() // ours: the Profiles leaves it open
	})
	return f
}

// do sends a request with the agent header and key (unless hdr overrides
// them: a nil value deletes a header) and returns status and body.
func (f *fixture) do(t testing.TB, method, path, body string, hdr map[string]*string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(agent.HeaderName, "1")
	if f.key != "" {
		req.Header.Set("Authorization", "Bearer "+f.key)
	}
	for k, v := range hdr {
		if v == nil {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, *v)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func ptr(s string) *string { return &s }

type tokenJSON struct {
	AccessToken string     `json:"access_token"`
	TokenType   string     `json:"token_type"`
	ExpiresIn   *int64     `json:"expires_in"`
	Expiry      *time.Time `json:"expiry"`
}

func decodeToken(t *testing.T, body string) tokenJSON {
	t.Helper()
	var v tokenJSON
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("token JSON %q: %v", body, err)
	}
	return v
}

func TestTokenEndpoints(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%v", tcp), func(t *testing.T) {
			f := newFixture(t, fixtureOpts{tcp: tcp, key: "0123456789abcdef-key", opts: oauthtest.Options{Rotate: true}, expired: true})
			code, body := f.do(t, "GET", "/v1/token/default", "", nil)
			if code != 200 {
				t.Fatalf("GET token: %d %s", code, body)
			}
			tok := decodeToken(t, body)
			if !f.idp.Valid(tok.AccessToken) || tok.TokenType != "Bearer" {
				t.Fatalf("token %+v not valid at the server", tok)
			}
			if tok.ExpiresIn == nil || *tok.ExpiresIn < 3500 || *tok.ExpiresIn > 3600 || tok.Expiry == nil ||
				time.Until(*tok.Expiry) < 3500*time.Second {
				t.Errorf("expires_in/expiry = %v/%v, want about an hour", tok.ExpiresIn, tok.Expiry)
			}
			code, raw := f.do(t, "GET", "/v1/token/default/raw", "", nil)
			if code != 200 || raw != tok.AccessToken {
				t.Errorf("raw = %d %q, want the same token bare", code, raw)
			}
			if st := f.idp.Stats(); st.RefreshCalls != 1 {
				t.Errorf("%d refreshes, want 1", st.RefreshCalls)
			}
			for _, b := range []string{body, raw} {
				if strings.Contains(b, clientSecret) || strings.Contains(b, "refresh") {
					t.Errorf("a response shows a secret or refresh token: %s", b)
				}
			}
		})
	}
}

// TestRefusals: every way a request can be refused, each with its code.
func TestRefusals(t *testing.T) {
	const key = "0123456789abcdef-key"
	f := newFixture(t, fixtureOpts{tcp: true, key: key, allow: []string{"default"}})
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      map[string]*string
		want                     int
		class                    string
	}{
		{"no key", "GET", "/v1/token/default", "", map[string]*string{"Authorization": nil}, 401, "unauthorized"},
		{"wrong key", "GET", "/v1/token/default", "", map[string]*string{"Authorization": ptr("Bearer 0123456789abcdef-kez")}, 401, "unauthorized"},
		{"key without Bearer", "GET", "/v1/token/default", "", map[string]*string{"Authorization": ptr(key)}, 401, "unauthorized"},
		{"missing header", "GET", "/v1/token/default", "", map[string]*string{agent.HeaderName: nil}, 400, "missing_header"},
		{"wrong header value", "GET", "/v1/token/default", "", map[string]*string{agent.HeaderName: ptr("true")}, 400, "missing_header"},
		{"X-Forwarded-For", "GET", "/v1/token/default", "", map[string]*string{"X-Forwarded-For": ptr("10.0.0.1")}, 403, "forwarded"},
		{"Forwarded", "GET", "/v1/token/default", "", map[string]*string{"Forwarded": ptr("for=10.0.0.1")}, 403, "forwarded"},
		{"Origin", "GET", "/v1/token/default", "", map[string]*string{"Origin": ptr("http://evil.example")}, 403, "origin"},
		{"not on the allow-list", "GET", "/v1/token/other", "", nil, 403, "profile_not_allowed"},
		{"not on the allow-list, nor in the store", "GET", "/v1/token/nosuch", "", nil, 403, "profile_not_allowed"},
		{"encoded slash", "GET", "/v1/token/default%2Fraw", "", nil, 400, "bad_path"},
		{"double slash", "GET", "/v1/token//default", "", nil, 400, "bad_path"},
		{"unknown endpoint", "GET", "/v1/tokens/default", "", nil, 404, "not_found"},
		{"unknown suffix", "GET", "/v1/token/default/refresh_token", "", nil, 404, "not_found"},
		{"trailing slash", "GET", "/v1/token/default/", "", nil, 404, "not_found"},
		{"no profile", "GET", "/v1/token/", "", nil, 400, "bad_profile"},
		{"POST to token", "POST", "/v1/token/default", "x", nil, 405, "method_not_allowed"},
		{"GET to rejected", "GET", "/v1/token/default/rejected", "", nil, 405, "method_not_allowed"},
		{"empty report", "POST", "/v1/token/default/rejected", "", nil, 400, "bad_body"},
		{"bad JSON report", "POST", "/v1/token/default/rejected", "{", map[string]*string{"Content-Type": ptr("application/json")}, 400, "bad_body"},
		{"oversized report", "POST", "/v1/token/default/rejected", strings.Repeat("a", agent.MaxBodyBytes+1), nil, 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do(t, tc.method, tc.path, tc.body, tc.hdr)
			var e struct{ Error, Message string }
			json.Unmarshal([]byte(body), &e)
			if code != tc.want || e.Error != tc.class {
				t.Errorf("%d %s, want %d %s", code, body, tc.want, tc.class)
			}
		})
	}
	if st := f.idp.Stats(); st.TokenCalls != 0 {
		t.Errorf("refused requests caused %d token calls", st.TokenCalls)
	}

	t.Run("DNS rebinding Host", func(t *testing.T) {
		// The host a rebinding page was loaded from, now resolving to us.
		req, _ := http.NewRequest("GET", f.base+"/v1/token/default", nil)
		req.Host = "evil.example"
		req.Header.Set(agent.HeaderName, "1")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("Host evil.example: %d, want 403", resp.StatusCode)
		}
	})
	t.Run("oversized header", func(t *testing.T) {
		// The agent answers 431 and closes the connection with the rest of
		// the header unread, which the kernel may turn into a reset that
		// overtakes the answer: either way the request was refused.
		req, _ := http.NewRequest("GET", f.base+"/v1/token/default", nil)
		req.Header.Set(agent.HeaderName, "1")
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Big", strings.Repeat("a", 2*agent.MaxHeaderBytes))
		resp, err := f.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("oversized header: %d, want 431", resp.StatusCode)
			}
		} else if !strings.Contains(err.Error(), "connection reset") {
			t.Errorf("oversized header: %v", err)
		}
		if code, body := f.do(t, "GET", "/v1/token/default", "", nil); code != 200 {
			t.Errorf("after an oversized header: %d %s", code, body)
		}
	})
	t.Run("healthz needs nothing", func(t *testing.T) {
		code, body := f.do(t, "GET", "/healthz", "", map[string]*string{"Authorization": nil, agent.HeaderName: nil})
		if code != 200 || body != "ok\n" {
			t.Errorf("healthz: %d %q", code, body)
		}
	})
	t.Run("readyz and metrics need the key", func(t *testing.T) {
		for _, p := range []string{"/readyz", "/metrics"} {
			if code, _ := f.do(t, "GET", p, "", map[string]*string{"Authorization": nil}); code != 401 {
				t.Errorf("%s without key: %d, want 401", p, code)
			}
		}
	})
}

func TestUnknownProfileWithAllowAll(t *testing.T) {
	f := newFixture(t, fixtureOpts{allow: []string{agent.AllProfiles}})
	if code, body := f.do(t, "GET", "/v1/token/nosuch", "", nil); code != 404 || !strings.Contains(body, "profile_not_found") {
		t.Errorf("unknown profile: %d %s, want 404 profile_not_found", code, body)
	}
	for _, p := range []string{"default", "other"} {
		if code, body := f.do(t, "GET", "/v1/token/"+p, "", nil); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	_, m := f.do(t, "GET", "/metrics", "", nil)
	if strings.Contains(m, "nosuch") {
		t.Error("metrics keep state for a profile that does not exist")
	}
}

// TestRejectedReportsRefreshOnce: 100 clients report the same token as
// rejected by a resource server; one refresh replaces it for all of them,
// and a report of the replaced token afterwards refreshes nothing.
func TestRejectedReportsRefreshOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: oauthtest.Options{Rotate: true}})
	_, body := f.do(t, "GET", "/v1/token/default", "", nil)
	stale := decodeToken(t, body).AccessToken
	f.idp.Revoke(stale) // the resource server now answers 401
	if resp, err := authedGet(f.idp.ResourceURL(), stale); err != nil || resp != 401 {
		t.Fatalf("resource with the revoked token: %d %v, want 401", resp, err)
	}
	f.idp.ResetStats()
	f.idp.SetLatency(100 * time.Millisecond) // reports pile up behind the refresh

	const n = 100
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			hdr := map[string]*string{}
			body := stale
			if i%2 == 0 {
				hdr["Content-Type"], body = ptr("application/json"), `{"access_token":"`+stale+`"}`
			}
			code, b := f.do(t, "POST", "/v1/token/default/rejected", body, hdr)
			if code != 200 {
				t.Errorf("report %d: %d %s", i, code, b)
				return
			}
			got[i] = decodeToken(t, b).AccessToken
		})
	}
	wg.Wait()
	for i, g := range got {
		if g == stale || g != got[0] {
			t.Fatalf("reporter %d got %q, want the one new token", i, g)
		}
	}
	if code, err := authedGet(f.idp.ResourceURL(), got[0]); err != nil || code != 200 {
		t.Errorf("resource with the new token: %d %v", code, err)
	}
	if st := f.idp.Stats(); st.RefreshCalls != 1 || st.ReuseDetections != 0 {
		t.Errorf("%d reports: %d refreshes, %d reuse detections; want 1 and 0", n, st.RefreshCalls, st.ReuseDetections)
	}
	// A late report of the old token, or of a made-up one, gets the current token.
	for _, tok := range []string{stale, "made-up-token"} {
		code, b := f.do(t, "POST", "/v1/token/default/rejected", tok, nil)
		if code != 200 || decodeToken(t, b).AccessToken != got[0] {
			t.Errorf("report of %q: %d %s", tok, code, b)
		}
	}
	if st := f.idp.Stats(); st.RefreshCalls != 1 {
		t.Errorf("a stale or made-up report refreshed: %d refreshes", st.RefreshCalls)
	}
	// Reporters that arrived once the refresh was done named a replaced
	// token (superseded); the others joined the refresh (current).
	_, m := f.do(t, "GET", "/metrics", "", nil)
	var current, superseded int
	_, err := fmt.Sscanf(metricLine(m, `tokencache_agent_rejected_reports_total{profile="default",outcome="current"}`), "%d", &current)
	if err == nil {
		_, err = fmt.Sscanf(metricLine(m, `tokencache_agent_rejected_reports_total{profile="default",outcome="superseded"}`), "%d", &superseded)
	}
	if err != nil || current < 1 || current+superseded != n+2 || superseded < 2 {
		t.Errorf("reports counted %d current, %d superseded (%v); want %d in all, at least 1 and 2:\n%s", current, superseded, err, n+2, m)
	}
	if !strings.Contains(m, `tokencache_agent_requests_total{route="rejected",code="200"} 102`+"\n") {
		t.Errorf("metrics lack the 102 answered reports:\n%s", m)
	}
}

// metricLine returns the value of the sample named name (with labels).
func metricLine(m, name string) string {
	for _, l := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

func authedGet(url, token string) (int, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestClientDisconnectMidRefresh: the client whose request started a
// refresh leaves while the token endpoint works; the refresh completes and
// the clients still waiting get its token.
func TestClientDisconnectMidRefresh(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: oauthtest.Options{Rotate: true}, expired: true})
	hold := f.idp.HoldRefreshes(oauthtest.BeforeRotate)
	ctx, cancel := context.WithCancel(context.Background())
	leaver := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.base+"/v1/token/default", nil)
		req.Header.Set(agent.HeaderName, "1")
		resp, err := f.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		leaver <- err
	}()
	<-hold.Arrived()
	type res struct {
		code int
		body string
	}
	stayers := make(chan res, 5)
	for range 5 {
		go func() {
			c, b := f.do(t, "GET", "/v1/token/default", "", nil)
			stayers <- res{c, b}
		}()
	}
	time.Sleep(100 * time.Millisecond) // the stayers wait on the flight
	cancel()
	if err := <-leaver; err == nil {
		t.Fatal("the leaving client's request completed")
	}
	time.Sleep(100 * time.Millisecond) // the agent sees the disconnect
	hold.Release()
	var first string
	for range 5 {
		r := <-stayers
		if r.code != 200 {
			t.Fatalf("waiting client: %d %s", r.code, r.body)
		}
		tok := decodeToken(t, r.body).AccessToken
		if first == "" {
			first = tok
		}
		if tok != first || !f.idp.Valid(tok) {
			t.Fatal("waiting clients got different or invalid tokens")
		}
	}
	if st := f.idp.Stats(); st.RefreshCalls != 1 || st.ReuseDetections != 0 {
		t.Errorf("%d refreshes, %d reuse detections; want 1 and 0", st.RefreshCalls, st.ReuseDetections)
	}
	rec, _, err := f.store.Load(context.Background(), "default")
	if err != nil || rec.AccessToken.Reveal() != first || rec.Lease != nil {
		t.Errorf("store after the refresh: %v, lease %v", err, rec.Lease)
	}
}

// TestWaitTimeout: a request that waits for a refresh longer than
// WaitTimeout gets 504; the refresh goes on and the next request gets its
// token.
func TestWaitTimeout(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: oauthtest.Options{Rotate: true}, expired: true, wait: 300 * time.Millisecond})
	hold := f.idp.HoldRefreshes(oauthtest.BeforeRotate)
	start := time.Now()
	code, body := f.do(t, "GET", "/v1/token/default", "", nil)
	if code != http.StatusGatewayTimeout || !strings.Contains(body, `"timeout"`) {
		t.Errorf("a wait beyond WaitTimeout: %d %s, want 504 timeout", code, body)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("answered after %v, want about 300 ms", d)
	}
	<-hold.Arrived()
	hold.Release()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body = f.do(t, "GET", "/v1/token/default", "", nil)
		if code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 200 || !f.idp.Valid(decodeToken(t, body).AccessToken) {
		t.Fatalf("after the refresh: %d %s", code, body)
	}
	if st := f.idp.Stats(); st.RefreshCalls != 1 {
		t.Errorf("%d refreshes, want 1", st.RefreshCalls)
	}
}

// TestSlowLoris: a connection that never finishes its request header is
// closed by the server's ReadHeaderTimeout; the agent keeps serving.
func TestSlowLoris(t *testing.T) {
	f := newFixture(t, fixtureOpts{tcp: true, headerTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(f.base, "http://")
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/token/default HTTP/1.1\r\nHost: localhost\r\nTokencache-Agent: 1\r\n")
		conns = append(conns, c)
	}
	// Trickle a header byte now and then: the deadline is for the whole header.
	start := time.Now()
	for _, c := range conns {
		c.Write([]byte("X-Slow: a"))
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			// Go answers a timed-out header with nothing, or with 408 on newer versions.
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection %d still open after 5 s", i)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow connections closed after %v, want about 300 ms", d)
	}
	if code, body := f.do(t, "GET", "/v1/token/default", "", nil); code != 200 {
		t.Errorf("agent after slow-loris: %d %s", code, body)
	}
}

func TestReadiness(t *testing.T) {
	f := newFixture(t, fixtureOpts{allow: []string{"default", "other"}})
	code, body := f.do(t, "GET", "/readyz", "", nil)
	if code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("readyz: %d %s", code, body)
	}
	// A profile without its refresh token cannot be refreshed: not ready.
	ctx := context.Background()
	if _, _, err := f.store.Update(ctx, "other", func(r *storage.Record) error {
		r.Grant("")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	code, body = f.do(t, "GET", "/readyz", "", nil)
	if code != 503 || !strings.Contains(body, "refresh_token") || !strings.Contains(body, `"default":{"ready":true}`) {
		t.Errorf("readyz with a partial profile: %d %s", code, body)
	}
	if strings.Contains(body, clientSecret) {
		t.Error("readyz shows a secret")
	}
}

func TestMetricsFormat(t *testing.T) {
	f := newFixture(t, fixtureOpts{allow: []string{"default"}})
	f.do(t, "GET", "/v1/token/default", "", nil)
	f.do(t, "GET", "/v1/token/nosuch", "", nil)
	code, m := f.do(t, "GET", "/metrics", "", nil)
	if code != 200 {
		t.Fatal(code)
	}
	for _, want := range []string{
		"# TYPE tokencache_agent_requests_total counter",
		`tokencache_agent_requests_total{route="token",code="200"} 1`,
		`tokencache_agent_requests_total{route="token",code="403"} 1`,
		`tokencache_agent_tokens_served_total{profile="default"} 1`,
		`tokencache_agent_token_expiry_timestamp_seconds{profile="default"} `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	// Every sample line is NAME{LABELS} VALUE or NAME VALUE.
	for _, line := range strings.Split(strings.TrimSpace(m), "\n") {
		if strings.HasPrefix(line, "# ") {
			continue
		}
		if f := strings.Fields(line); len(f) != 2 || !strings.HasPrefix(f[0], "tokencache_agent_") {
			t.Errorf("malformed sample line %q", line)
		}
	}
}

// TestAgentErrorsAreClassified: a revoked grant is 503 reauth_required,
// and readiness says so until a token is served again.
func TestAgentErrorsAreClassified(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: oauthtest.Options{Rotate: true}, expired: true})
	f.idp.Revoke(f.refresh["default"])
	code, body := f.do(t, "GET", "/v1/token/default", "", nil)
	if code != 503 || !strings.Contains(body, `"reauth_required"`) {
		t.Errorf("revoked grant: %d %s", code, body)
	}
	if code, body := f.do(t, "GET", "/readyz", "", nil); code != 503 || !strings.Contains(body, "reauth_required") {
		t.Errorf("readyz after a revoked grant: %d %s", code, body)
	}
	if strings.Contains(body, f.refresh["default"]) {
		t.Error("an error shows the refresh token")
	}
}

func TestConfigRequired(t *testing.T) {
	st, _ := storage.Open(context.Background(), "memory://agent-config")
	defer st.Close()
	p, _ := credentials.NewProfiles(credentials.Config{Store: st})
	defer p.Close()
	if _, err := agent.New(agent.Config{Profiles: p}); err == nil {
		t.Error("New without Allow succeeded")
	}
	if _, err := agent.New(agent.Config{Allow: []string{"default"}}); err == nil {
		t.Error("New without Profiles succeeded")
	}
	if _, err := agent.New(agent.Config{Profiles: p, Allow: []string{"bad\nname"}}); err == nil {
		t.Error("New with a malformed profile name succeeded")
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.com:0"} {
		if l, err := agent.ListenLoopback(addr); err == nil {
			l.Close()
			t.Errorf("ListenLoopback(%q) succeeded", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		l, err := agent.ListenLoopback(addr)
		if err != nil {
			t.Errorf("ListenLoopback(%q): %v", addr, err)
			continue
		}
		l.Close()
	}
}

func TestMain(m *testing.M) {
	// As another user (see TestUnixSocketOwnerOnly): dial and report.
	if p := os.Getenv("AGENT_TEST_DIAL"); p != "" {
		c, err := net.Dial("unix", p)
		if err != nil {
			fmt.Println("refused:", err)
			os.Exit(3)
		}
		c.Close()
		fmt.Println("connected")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
