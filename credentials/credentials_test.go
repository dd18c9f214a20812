package credentials_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// flaky wraps an adapter and fails every call while down is set: fault
// injection for store outages.
type flaky struct {
	driver.Adapter
	down atomic.Bool
	// lostReply makes every Put apply and then report ErrUnavailable, as
	// a write whose reply timed out does.
	lostReply atomic.Bool
	// refused fails every call as a refused connection: writes say they
	// were not applied, reads do not bother (a read applies nothing).
	refused atomic.Bool
	// afterLostReply, if set, runs after a Put that lostReply failed:
	// what happens in the store before the writer tries again.
	afterLostReply atomic.Pointer[func()]
	// slowPuts makes that many next Puts apply only after slowBy: a
	// loaded store.
	slowPuts atomic.Int32
	slowBy   time.Duration
	puts     atomic.Int64
}

func (f *flaky) err() error {
	if f.down.Load() || f.refused.Load() {
		return driver.Wrap(storage.ErrUnavailable, "flaky", errors.New("connection refused"))
	}
	return nil
}

func (f *flaky) Get(ctx context.Context, k string) ([]byte, storage.Revision, error) {
	if err := f.err(); err != nil {
		return nil, "", err
	}
	return f.Adapter.Get(ctx, k)
}

func (f *flaky) Put(ctx context.Context, k string, v []byte, c driver.Condition) (storage.Revision, error) {
	f.puts.Add(1)
	if err := f.err(); err != nil {
		if f.refused.Load() {
			err = driver.NotApplied(err)
		}
		return "", err
	}
	if f.slowPuts.Add(-1) >= 0 {
		time.Sleep(f.slowBy)
	}
	rev, err := f.Adapter.Put(ctx, k, v, c)
	if err == nil && f.lostReply.Load() {
		if fn := f.afterLostReply.Load(); fn != nil {
			(*fn)()
		}
		return "", driver.Wrap(storage.ErrUnavailable, "flaky", errors.New("i/o timeout after the write applied"))
	}
	return rev, err
}

type fixture struct {
	srv     *oauthtest.Server
	store   *storage.Store
	flaky   *flaky
	journal string // the recovery journal directory of every Credentials made by creds
}

func newFixture(t *testing.T, opts oauthtest.Options) *fixture {
	t.Helper()
	srv := oauthtest.NewServer(opts)
	t.Cleanup(srv.Close)
	srv.AddClient("storm-client", "storm-secret")
	fl := &flaky{Adapter: memory.New(nil)}
	st := storage.NewNamedStore("flaky:"+t.Name(), fl)
	t.Cleanup(func() { st.Close() }) // after every Credentials' Close (registered later, run first)
	credentialstest.Seed(t, st, "p", srv)
	return &fixture{srv: srv, store: st, flaky: fl, journal: t.TempDir()}
}

func (f *fixture) creds(t *testing.T, mod func(*credentials.Config)) *credentials.Credentials {
	t.Helper()
	cfg := credentials.Config{Store: f.store, Profile: "p", Skew: 100 * time.Millisecond,
		LeaseTTL: 2 * time.Second, PollInterval: 10 * time.Millisecond, RetryBackoff: 10 * time.Millisecond,
		JournalDir: f.journal}
	if mod != nil {
		mod(&cfg)
	}
	c, err := credentials.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fixture) record(t *testing.T) *storage.Record {
	t.Helper()
	r, _, err := f.store.Load(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRefreshStoresRotatedTokenAndCaches(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, nil)
	before := f.record(t).RefreshToken
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !f.srv.Valid(tok.AccessToken.Reveal()) {
		t.Fatal("token not valid at the server")
	}
	rec := f.record(t)
	if rec.RefreshToken == before || !f.srv.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Fatal("rotated refresh token was not stored")
	}
	if rec.AccessToken != tok.AccessToken || rec.Lease != nil || rec.Expiry.IsZero() {
		t.Fatalf("stored record: lease %v expiry %v", rec.Lease, rec.Expiry)
	}
	again, _ := c.Token(context.Background())
	if again != tok || f.srv.Stats().RefreshCalls != 1 {
		t.Fatalf("second Token refreshed again (%d calls)", f.srv.Stats().RefreshCalls)
	}
	// A second process adopts the stored token instead of refreshing.
	other := f.creds(t, nil)
	adopted, err := other.Token(context.Background())
	if err != nil || adopted.AccessToken != tok.AccessToken || f.srv.Stats().RefreshCalls != 1 {
		t.Fatalf("second Credentials did not adopt the stored token: %v", err)
	}
}

func TestExpiryFromJWTWhenExpiresInMissing(t *testing.T) {
	f := newFixture(t, oauthtest.Options{OmitExpiresIn: true, AccessTTL: time.Hour})
	tok, err := f.creds(t, nil).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.Expiry); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("expiry in %v, want about 1h from the JWT exp claim", d)
	}
}

func TestJWTExpiry(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"eyJhbGciOiJub25lIn0.eyJleHAiOjE5MDAwMDAwMDB9.", 1900000000, true},
		{"eyJhbGciOiJub25lIn0.eyJleHAiOiJzb29uIn0.", 0, false},
		{"opaque-token", 0, false},
		{"a.!!!.c", 0, false},
		{"a.eyJleHAiOjFlMzAwfQ.c", 0, false},
	} {
		got, ok := credentials.JWTExpiry(tc.in)
		if ok != tc.ok || (ok && got.Unix() != tc.want) {
			t.Errorf("JWTExpiry(%q) = %v, %v", tc.in, got, ok)
		}
	}
}

func TestWaiterCancelDoesNotCancelRefresh(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	f.srv.SetLatency(300 * time.Millisecond)
	c := f.creds(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient waiter got %v", err)
	}
	tok, err := c.Token(context.Background())
	if err != nil || !f.srv.Valid(tok.AccessToken.Reveal()) {
		t.Fatalf("patient waiter: %v", err)
	}
	if n := f.srv.Stats().RefreshCalls; n != 1 {
		t.Fatalf("%d refresh calls, want 1: the cancelled waiter must not abort or restart the flight", n)
	}
}

func TestTemporaryFailuresBackOffThenSucceed(t *testing.T) {
	for _, fault := range []oauthtest.Fault{oauthtest.FaultServerError, oauthtest.FaultUnavailable, oauthtest.FaultMalformedJSON, oauthtest.FaultTimeout} {
		t.Run(fault.String(), func(t *testing.T) {
			f := newFixture(t, oauthtest.Options{Rotate: true})
			f.srv.FailNext(2, fault)
			c := f.creds(t, func(c *credentials.Config) { c.RefreshTimeout = 300 * time.Millisecond })
			tok, err := c.Token(context.Background())
			if err != nil || !f.srv.Valid(tok.AccessToken.Reveal()) {
				t.Fatalf("Token after 2 failures: %v", err)
			}
			if s := f.srv.Stats(); s.ReuseDetections != 0 || s.Failures != 2 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestPersistentFailureIsTypedAndHeldOff(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	f.srv.FailNext(100, oauthtest.FaultServerError)
	c := f.creds(t, func(c *credentials.Config) { c.MaxRetries = 2 })
	_, err := c.Token(context.Background())
	var ee *credentials.EndpointError
	if !errors.As(err, &ee) || ee.StatusCode != 500 || !ee.Temporary() {
		t.Fatalf("got %v, want a temporary *EndpointError with status 500", err)
	}
	calls := f.srv.Stats().TokenCalls
	if calls != 3 {
		t.Fatalf("%d calls, want 1 + 2 retries", calls)
	}
	// Within the hold-off, callers fail fast without calling the endpoint.
	if _, err := c.Token(context.Background()); err == nil || f.srv.Stats().TokenCalls != calls {
		t.Fatalf("hold-off not honoured: %v, %d calls", err, f.srv.Stats().TokenCalls)
	}
	if f.record(t).Lease != nil {
		t.Fatal("lease not released after failure")
	}
}

func TestInvalidGrantNeedsReauthWithoutLoop(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	f.srv.Revoke(f.record(t).RefreshToken.Reveal())
	c := f.creds(t, nil)
	for i := range 3 {
		_, err := c.Token(context.Background())
		if !errors.Is(err, credentials.ErrReauthRequired) {
			t.Fatalf("call %d: got %v, want ErrReauthRequired", i, err)
		}
		if strings.Contains(err.Error(), f.record(t).RefreshToken.Reveal()) {
			t.Fatal("error leaks the refresh token")
		}
	}
	if n := f.srv.Stats().RefreshCalls; n != 1 {
		t.Fatalf("%d refresh calls for a dead refresh token, want 1", n)
	}
	// An operator stores a new refresh token: the next Token works again.
	f.store.Update(context.Background(), "p", func(r *storage.Record) error {
		r.Grant(f.srv.IssueRefreshToken("storm-client"))
		return nil
	})
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatalf("after re-authorization: %v", err)
	}
}

func TestInvalidGrantRecheckedAgainstStore(t *testing.T) {
	// Our refresh token is dead, but while our request is at the server
	// another process (simulated by editing the store) stores a newer
	// one. The invalid_grant must be resolved by re-reading, not reported.
	f := newFixture(t, oauthtest.Options{Rotate: true})
	f.srv.Revoke(f.record(t).RefreshToken.Reveal())
	fresh := f.srv.IssueRefreshToken("storm-client")
	c := f.creds(t, nil)
	// Before the failing call lands, swap in a new refresh token.
	hold := f.srv.HoldRefreshes(oauthtest.BeforeRotate)
	go func() {
		<-hold.Arrived()
		f.store.Update(context.Background(), "p", func(r *storage.Record) error {
			r.Grant(fresh)
			return nil
		})
		hold.Release()
	}()
	tok, err := c.Token(context.Background())
	if err != nil || !f.srv.Valid(tok.AccessToken.Reveal()) {
		t.Fatalf("Token: %v", err)
	}
}

func TestStoreUnavailableIsTyped(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	f.flaky.down.Store(true)
	_, err := f.creds(t, nil).Token(context.Background())
	if !errors.Is(err, credentials.ErrStoreUnavailable) {
		t.Fatalf("got %v, want ErrStoreUnavailable", err)
	}
}

func TestRotatedTokenSurvivesStoreOutage(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, nil)
	// Take the store down while the refresh is at the server: the lease
	// was taken, the server rotates, and the write of the new token fails.
	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	go func() {
		<-hold.Arrived()
		f.flaky.down.Store(true)
		hold.Release()
	}()
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if f.srv.Valid(tok.AccessToken.Reveal()) == false {
		t.Fatal("token not valid")
	}
	f.flaky.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := f.record(t)
		if rec.AccessToken == tok.AccessToken {
			if !f.srv.ValidRefresh(rec.RefreshToken.Reveal()) {
				t.Fatal("stored refresh token is not the rotated one")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotated refresh token never written after the store came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f.srv.Stats().ReuseDetections != 0 {
		t.Fatal("reuse detected")
	}
}

func TestProactiveRenewalServesCurrentToken(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true, AccessTTL: 2 * time.Second})
	// No spread: the renewal must start at the first call in the window.
	c := f.creds(t, func(c *credentials.Config) { c.RenewAhead = time.Second; c.RenewSpread = -1 })
	first, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// In the renewal window, with the renewal held at the server, Token
	// must still answer, with the current token.
	hold := f.srv.HoldRefreshes(oauthtest.BeforeRotate)
	time.Sleep(time.Until(first.Expiry.Add(-900 * time.Millisecond)))
	type result struct {
		tok *credentials.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := c.Token(context.Background())
		done <- result{tok, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || r.tok != first {
			t.Fatalf("in the renewal window Token returned %v, %v; want the current token", r.tok, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Token blocked on the background renewal")
	}
	<-hold.Arrived() // the renewal did start
	hold.Release()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, _ := c.Token(context.Background())
		if tok != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no background renewal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.srv.Stats().RefreshCalls; n != 2 {
		t.Fatalf("%d refresh calls, want 2", n)
	}
}

func TestPartialCredentials(t *testing.T) {
	st := storage.NewStore(memory.New(nil))
	st.Update(context.Background(), "p", func(r *storage.Record) error { r.ClientID = "id"; return nil })
	c, _ := credentials.New(credentials.Config{Store: st, Profile: "p"})
	defer c.Close()
	_, err := c.Token(context.Background())
	var pe *credentials.PartialCredentialsError
	if !errors.As(err, &pe) || strings.Join(pe.Missing, ",") != "refresh_token,token_url" {
		t.Fatalf("got %v", err)
	}
}

func TestWrongClientSecret(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	f.store.Update(context.Background(), "p", func(r *storage.Record) error { r.ClientSecret = "wrong"; return nil })
	_, err := f.creds(t, nil).Token(context.Background())
	var ee *credentials.EndpointError
	if !errors.As(err, &ee) || ee.Code != "invalid_client" || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("got %v", err)
	}
}

func TestAuthCodeExchangeAndRevoke(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	f.store.Update(context.Background(), "p", func(r *storage.Record) error { r.Grant(""); r.AccessToken = ""; return nil })
	c := f.creds(t, nil)
	const redirect = "http://127.0.0.1:1/callback"
	req, err := credentials.NewAuthRequest(f.srv.AuthorizeURL(), "storm-client", redirect, "read")
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if loc == nil || loc.Query().Get("state") != req.State {
		t.Fatalf("redirect %v lacks our state", loc)
	}
	code := loc.Query().Get("code")
	if _, err := c.Exchange(context.Background(), code, "wrong-verifier-wrong-verifier-wrong-verifier", redirect); err == nil {
		t.Fatal("exchange with a wrong PKCE verifier succeeded")
	}
	resp, _ = noFollow.Get(req.URL)
	resp.Body.Close()
	loc, _ = resp.Location()
	tok, err := c.Exchange(context.Background(), loc.Query().Get("code"), req.Verifier, redirect)
	if err != nil || !f.srv.Valid(tok.AccessToken.Reveal()) {
		t.Fatalf("exchange: %v", err)
	}
	rec := f.record(t)
	if rec.RefreshToken == "" || rec.AccessToken != tok.AccessToken {
		t.Fatal("exchange did not store the tokens")
	}
	if err := c.Revoke(context.Background(), f.srv.RevokeURL()); err != nil {
		t.Fatal(err)
	}
	if f.srv.Valid(tok.AccessToken.Reveal()) || f.srv.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Fatal("tokens still valid after Revoke")
	}
	if r := f.record(t); r.AccessToken != "" || r.RefreshToken != "" {
		t.Fatal("revoked tokens left in the store")
	}
}

func TestTransportRefreshesOnceOn401(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, nil)
	client := c.Client()
	resp, err := client.Get(f.srv.ResourceURL())
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	resp.Body.Close()
	tok, _ := c.Token(context.Background())
	f.srv.Revoke(tok.AccessToken.Reveal()) // the server forgets the access token only
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			resp, err := client.Post(f.srv.ResourceURL(), "text/plain", strings.NewReader("replayable body"))
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("after 401: %v %v", resp, err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if n := f.srv.Stats().RefreshCalls; n != 2 {
		t.Fatalf("%d refresh calls, want 2: ten 401s on one token must cause one refresh", n)
	}
}

func TestTokenSource(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	ot, err := f.creds(t, nil).TokenSource(context.Background()).Token()
	if err != nil || !ot.Valid() || !f.srv.Valid(ot.AccessToken) {
		t.Fatalf("TokenSource: %v", err)
	}
}

func TestProfiles(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	ps, err := credentials.NewProfiles(credentials.Config{Store: f.store})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ps.Get("p")
	b, _ := ps.Get("p")
	if a != b {
		t.Fatal("Get made two Credentials for one profile")
	}
	tenant := &storage.Record{Profile: "tenant-2", ClientID: "storm-client", ClientSecret: "storm-secret",
		RefreshToken: secret.Secret(f.srv.IssueRefreshToken("storm-client")), TokenURL: f.srv.TokenURL()}
	if err := ps.Add(context.Background(), tenant); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Token(context.Background(), "tenant-2"); err != nil {
		t.Fatal(err)
	}
	names, _ := ps.List(context.Background())
	if len(names) != 2 {
		t.Fatalf("List = %v", names)
	}
	if err := ps.Remove(context.Background(), "tenant-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Token(context.Background(), "tenant-2"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("removed profile: %v", err)
	}
	ps.Close()
	if _, err := ps.Get("p"); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

// TestProfilesCloseLeavesStoreOpen pins the Close rule: whoever opens a
// store closes it, and Profiles.Close does not close the store it was
// handed, so the store's owner (and another Profiles over it) keeps using it.
func TestProfilesCloseLeavesStoreOpen(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	ctx := context.Background()
	ps, err := credentials.NewProfiles(credentials.Config{Store: f.store, JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Token(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := ps.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := f.store.Load(ctx, "p"); err != nil {
		t.Fatalf("the store after Profiles.Close: %v", err)
	}
	again, err := credentials.NewProfiles(credentials.Config{Store: f.store, JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := again.Token(ctx, "p"); err != nil {
		t.Fatalf("a second Profiles over the same store: %v", err)
	}
	if err := again.Add(ctx, &storage.Record{Profile: "q", ClientID: "storm-client", ClientSecret: "storm-secret",
		RefreshToken: secret.Secret(f.srv.IssueRefreshToken("storm-client")), TokenURL: f.srv.TokenURL()}); err != nil {
		t.Fatalf("writing the store after another Profiles closed: %v", err)
	}
	// The owner's Close is the one that closes it.
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.store.Load(ctx, "p"); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Load after the owner's Close: %v", err)
	}
}

func TestRefreshNilForcesRefresh(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	first, err := f.creds(t, nil).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A new process forces a refresh although the store holds a valid token.
	forced, err := f.creds(t, nil).Refresh(context.Background(), nil)
	if err != nil || forced.AccessToken == first.AccessToken || f.srv.Stats().RefreshCalls != 2 {
		t.Fatalf("Refresh(nil) did not refresh: %v, %d calls", err, f.srv.Stats().RefreshCalls)
	}
}

func TestCloseDuringRefreshKeepsRotatedToken(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, nil)
	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	done := make(chan error, 1)
	go func() {
		_, err := c.Token(context.Background())
		done <- err
	}()
	<-hold.Arrived()
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	time.Sleep(50 * time.Millisecond)
	hold.Release()
	<-closed
	if err := <-done; err != nil {
		t.Fatalf("Token: %v", err)
	}
	if rec := f.record(t); !f.srv.ValidRefresh(rec.RefreshToken.Reveal()) || rec.Lease != nil {
		t.Fatal("Close during a refresh lost the rotated refresh token")
	}
}

func TestEndpointSlowerThanLease(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	f.srv.SetLatency(3 * time.Second)
	c := f.creds(t, func(c *credentials.Config) {
		c.LeaseTTL, c.RefreshTimeout, c.MaxRetries = time.Second, 300*time.Millisecond, 1
	})
	_, err := c.Token(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	f.srv.SetLatency(0)
	time.Sleep(time.Second) // the hold-off after the failure
	tok, err := c.Token(context.Background())
	if err != nil || !f.srv.Valid(tok.AccessToken.Reveal()) {
		t.Fatalf("after the endpoint recovered: %v", err)
	}
	if s := f.srv.Stats(); s.ReuseDetections != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestUndecodableRecord(t *testing.T) {
	a := memory.New(nil)
	garbage := []byte(`{"profile":"p","expiry":"not a time"}`)
	a.Put(context.Background(), "p", garbage, driver.IfAbsent())
	c, _ := credentials.New(credentials.Config{Store: storage.NewStore(a), Profile: "p"})
	defer c.Close()
	if _, err := c.Token(context.Background()); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	if v, _, _ := a.Get(context.Background(), "p"); string(v) != string(garbage) {
		t.Fatal("the undecodable record was changed")
	}
}
