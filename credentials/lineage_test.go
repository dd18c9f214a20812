package credentials_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
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

// Regression tests for the ways a refresh token used to be replayed or
// dropped (issue 11). Each ends by checking the grant: the stored refresh
// token is the server's live one and the server saw no reuse.

func (f *fixture) checkGrant(t *testing.T) {
	t.Helper()
	rec := f.record(t)
	if !f.srv.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Fatal("the stored refresh token is not the server's live one: the grant is lost")
	}
	if n := f.srv.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detections: the grant was revoked", n)
	}
}

// replica returns Credentials over a second connection to the fixture's
// store: another process.
func (f *fixture) replica(t *testing.T, mod func(*credentials.Config)) *credentials.Credentials {
	t.Helper()
	other := &fixture{srv: f.srv, store: f.direct(), journal: t.TempDir()}
	return other.creds(t, mod)
}

// tokenWithFault has c refresh, turning fault on once the server has
// rotated the refresh token (so the write of the successor meets it), and
// returns the token Token handed out. fault stays on.
func (f *fixture) tokenWithFault(t *testing.T, c *credentials.Credentials, fault *atomic.Bool) *credentials.Token {
	t.Helper()
	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	go func() {
		<-hold.Arrived()
		fault.Store(true)
		hold.Release()
	}()
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatalf("Token with the store failing after the rotation: %v", err)
	}
	return tok
}

// direct returns the fixture's store without its faults: another replica
// that is not partitioned, or the server side of an eviction.
func (f *fixture) direct() *storage.Store {
	return storage.NewNamedStore(f.store.Name(), f.flaky.Adapter)
}

// Case 1: a write that landed but was reported as failed leaves a pending
// token; another replica then refreshes again. The late flush must not put
// the spent token back over the newer one.
func TestLateFlushDoesNotReplaceNewerToken(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c1 := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 600 * time.Millisecond })
	f.tokenWithFault(t, c1, &f.flaky.lostReply)
	f.flaky.lostReply.Store(false)
	f.flaky.down.Store(true) // c1 is partitioned: its retries fail
	c2 := f.replica(t, nil)
	if _, err := c2.Refresh(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	f.flaky.down.Store(false)
	if err := c1.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	f.checkGrant(t)
	if _, err := c2.Refresh(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	f.checkGrant(t)
}

// Case 2: Close during a store outage used to cancel the pending write and
// drop the rotated token. Now Close says where it is, and the next process
// writes it to the store before refreshing.
func TestCloseDuringOutageJournalsAndNextProcessReplays(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c1 := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 400 * time.Millisecond })
	tok := f.tokenWithFault(t, c1, &f.flaky.down)
	err := c1.Close()
	var ue *credentials.UnpersistedError
	if !errors.As(err, &ue) || !errors.Is(err, credentials.ErrUnpersisted) || ue.Journal == "" {
		t.Fatalf("Close during the outage: %v, want an UnpersistedError naming the journal", err)
	}
	if fi, err := os.Stat(ue.Journal); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal entry %s: %v, mode %v", ue.Journal, err, fi.Mode())
	}
	if strings.Contains(err.Error(), tok.AccessToken.Reveal()) {
		t.Fatal("error leaks the access token")
	}
	f.flaky.down.Store(false)
	// The next process: same store, same journal, access token expired.
	c2 := f.creds(t, nil)
	if _, err := c2.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.srv.Stats().RefreshCalls != 1 {
		t.Fatalf("%d refresh calls: the journalled token should have been adopted", f.srv.Stats().RefreshCalls)
	}
	f.checkGrant(t)
	if _, err := os.Stat(ue.Journal); !os.IsNotExist(err) {
		t.Fatal("journal entry left after replay")
	}
	if _, err := c2.Refresh(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	f.checkGrant(t)
}

// Without a journal a rotated token the store did not take is not handed
// out as if it were safe: Token reports it, and it is written when the
// store answers again.
func TestNoJournalReportsUnpersisted(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 400 * time.Millisecond; c.JournalDir = "-" })
	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	go func() {
		<-hold.Arrived()
		f.flaky.down.Store(true)
		hold.Release()
	}()
	_, err := c.Token(context.Background())
	var ue *credentials.UnpersistedError
	if !errors.As(err, &ue) || ue.Journal != "" {
		t.Fatalf("Token: %v, want an UnpersistedError without a journal", err)
	}
	f.flaky.down.Store(false)
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.checkGrant(t)
}

// Case 5: a replica with a short lease (a fleet mid-rollout) must not take
// over a live lease written by one with a long lease.
func TestShortLeaseHonoursHoldersLease(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	long := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 8 * time.Second })
	short := f.replica(t, func(c *credentials.Config) { c.LeaseTTL = 500 * time.Millisecond })
	hold := f.srv.HoldRefreshes(oauthtest.BeforeRotate)
	first := make(chan error, 1)
	go func() { _, err := long.Token(context.Background()); first <- err }()
	<-hold.Arrived()
	second := make(chan error, 1)
	go func() { _, err := short.Token(context.Background()); second <- err }()
	time.Sleep(1500 * time.Millisecond) // three of the short replica's leases
	hold.Release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Stats().RefreshCalls; n != 1 {
		t.Fatalf("%d refresh calls, want 1: the short lease took over a live one", n)
	}
	f.checkGrant(t)
}

func TestLeaseMustCoverCallAndWrite(t *testing.T) {
	st := storage.NewStore(memory.New(nil))
	_, err := credentials.New(credentials.Config{Store: st, LeaseTTL: time.Second, RefreshTimeout: 700 * time.Millisecond, StoreTimeout: 400 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "StoreTimeout") {
		t.Fatalf("LeaseTTL shorter than call plus write accepted: %v", err)
	}
}

// Case 6: the profile vanishes while its refresh is at the server (an
// evicting cache, a server restarted without persistence). The refreshed
// record is restored whole instead of being dropped.
func TestVanishedProfileIsRestored(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, nil)
	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	go func() {
		<-hold.Arrived()
		if err := f.store.Delete(context.Background(), "p"); err != nil {
			t.Error(err)
		}
		hold.Release()
	}()
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rec := f.record(t)
	if rec.AccessToken != tok.AccessToken || rec.ClientID == "" || rec.TokenURL == "" {
		t.Fatal("the vanished profile was not restored whole")
	}
	f.checkGrant(t)
}

// conflicting answers every Put with ErrConflict, as a store holding a
// dead writer's claim does.
type conflicting struct {
	driver.Adapter
	puts atomic.Int64
}

func (c *conflicting) Put(ctx context.Context, k string, v []byte, cond driver.Condition) (storage.Revision, error) {
	c.puts.Add(1)
	return "", storage.ErrConflict
}

// Case 7: taking the lease against a store that keeps answering conflict
// used to spin at ~170,000 conditional puts a second.
func TestLeaseConflictsBackOff(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer srv.Close()
	srv.AddClient("storm-client", "storm-secret")
	mem := memory.New(nil)
	credentialstest.Seed(t, storage.NewStore(mem), "p", srv)
	ad := &conflicting{Adapter: mem}
	c, err := credentials.New(credentials.Config{Store: storage.NewStore(ad), Profile: "p", LeaseTTL: 2 * time.Second, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.Token(ctx); err == nil {
		t.Fatal("Token succeeded against a store that never takes a write")
	}
	if n := ad.puts.Load(); n > 300 {
		t.Fatalf("%d conditional puts in one second of conflicts; want a backoff", n)
	}
}

// Case 10: a Grant on an empty store (a developer token, client
// credentials) creates the profile with its first token.
func TestGrantOnEmptyStore(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{})
	defer srv.Close()
	srv.AddClient("svc", "svc-secret")
	st := storage.NewStore(memory.New(nil))
	grant := credentials.GrantFunc(func(ctx context.Context, _ *storage.Record) (*credentials.Tokens, error) {
		return credentials.RequestToken(ctx, http.DefaultClient, credentials.TokenRequest{TokenURL: srv.TokenURL(),
			ClientID: "svc", ClientSecret: secret.Secret("svc-secret"), Form: url.Values{"grant_type": {"client_credentials"}}})
	})
	c, err := credentials.New(credentials.Config{Store: st, Profile: "svc", Grant: grant})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok, err := c.Token(context.Background())
	if err != nil || !srv.Valid(tok.AccessToken.Reveal()) {
		t.Fatalf("a grant on an empty store: %v", err)
	}
	if rec, _, err := st.Load(context.Background(), "svc"); err != nil || rec.AccessToken != tok.AccessToken {
		t.Fatalf("the profile was not created with the token: %v", err)
	}
}

func TestTokensShorterThanSkew(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true, AccessTTL: 4 * time.Second})
	c := f.creds(t, func(c *credentials.Config) { c.Skew = 30 * time.Second })
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Valid(time.Now()) {
		t.Fatal("a 4 s token with a 30 s skew was handed out already invalid")
	}
	again, err := c.Token(context.Background())
	if err != nil || again != tok || f.srv.Stats().RefreshCalls != 1 {
		t.Fatalf("second call refreshed again (%d calls)", f.srv.Stats().RefreshCalls)
	}
	f.checkGrant(t)
}

// Close while callers keep starting flights used to race Close's wait
// with a new flight's start (a WaitGroup panic); now a flight asked for
// after Close answers at once.
func TestCloseRacesTokenCalls(t *testing.T) {
	for range 20 {
		f := newFixture(t, oauthtest.Options{Rotate: true, AccessTTL: time.Second})
		c := f.creds(t, nil)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					c.Refresh(context.Background(), nil)
				}
			}
		}()
		time.Sleep(5 * time.Millisecond)
		c.Close()
		close(stop)
		<-done
	}
}

// Simulation seed 38101: a write whose reply was lost had landed; another
// replica read the token it carried and, its access token due, refreshed
// past it; then the store lost the profile. The held-back token must not
// be put back into the emptied store (the next refresh would replay it and
// the server would revoke the grant): it stays in the recovery journal,
// and the error says where.
func TestHeldBackTokenNotRestoredIntoEmptiedStore(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true, AccessTTL: 2 * time.Second})
	c1 := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 600 * time.Millisecond })
	f.tokenWithFault(t, c1, &f.flaky.lostReply)
	f.flaky.lostReply.Store(false)
	f.flaky.down.Store(true)            // c1 is partitioned: its retries fail
	time.Sleep(1100 * time.Millisecond) // past c1's lease
	c2 := f.replica(t, nil)
	if _, err := c2.Refresh(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	direct := f.direct() // not partitioned
	rec, _, err := direct.Load(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	live := rec.RefreshToken
	if err := direct.Delete(context.Background(), "p"); err != nil { // evicted
		t.Fatal(err)
	}
	f.flaky.down.Store(false)
	err = c1.Flush(context.Background())
	var ue *credentials.UnpersistedError
	if !errors.As(err, &ue) || ue.Journal == "" {
		t.Fatalf("Flush into the emptied store: %v, want an UnpersistedError naming the journal", err)
	}
	if _, _, err := f.store.Load(context.Background(), "p"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the held-back token was put back into the emptied store (%v)", err)
	}
	if n := f.srv.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detections", n)
	}
	if !f.srv.ValidRefresh(live.Reveal()) {
		t.Fatal("the live refresh token is no longer valid")
	}
	if _, err := os.Stat(ue.Journal); err != nil {
		t.Fatalf("journal entry: %v", err)
	}
}

// The other side of the same rule: a profile lost while the writer's lease
// still excludes other refreshers (its record carries the lease) is
// restored, not left in the journal with the fleet failing.
func TestHeldBackTokenRestoredWithinLease(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c1 := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 600 * time.Millisecond })
	tok := f.tokenWithFault(t, c1, &f.flaky.down)
	direct := f.direct()
	if err := direct.Delete(context.Background(), "p"); err != nil { // restarted empty
		t.Fatal(err)
	}
	f.flaky.down.Store(false)
	if err := c1.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if rec := f.record(t); rec.AccessToken != tok.AccessToken {
		t.Fatal("the fresh held-back token was not restored")
	}
	f.checkGrant(t)
}

// Simulation seed 18224: as seed 38101, but the other replica forces a
// refresh (Refresh with the token it was given, as after a 401) while the
// access token is fresh. The refreshed record is written with the
// refresher's lease still on it, so the forced refresh waits instead of
// spending the token, and the held-back token can go back into the emptied
// store while that lease lasts.
func TestForcedRefreshWaitsForHeldBackWrite(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c1 := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 1500 * time.Millisecond })
	tok := f.tokenWithFault(t, c1, &f.flaky.lostReply)
	f.flaky.lostReply.Store(false)
	f.flaky.down.Store(true) // c1 is partitioned: its retries fail
	c2 := f.replica(t, func(c *credentials.Config) { c.LeaseTTL = 300 * time.Millisecond })
	forced := make(chan error, 1)
	go func() { _, err := c2.Refresh(context.Background(), tok); forced <- err }()
	time.Sleep(200 * time.Millisecond)
	if calls := f.srv.Stats().RefreshCalls; calls != 1 {
		t.Fatalf("%d refresh calls: the forced refresh did not wait for the writer's lease", calls)
	}
	direct := f.direct()
	if err := direct.Delete(context.Background(), "p"); err != nil { // evicted
		t.Fatal(err)
	}
	f.flaky.down.Store(false)
	if err := c1.Flush(context.Background()); err != nil {
		t.Fatalf("Flush within the lease: %v", err)
	}
	// The waiting flight may have read the store while it was empty and
	// failed with ErrNotFound; either way it must not have spent a token.
	if err := <-forced; err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("forced refresh: %v", err)
	}
	if _, err := c2.Refresh(context.Background(), tok); err != nil {
		t.Fatalf("forced refresh after the restore: %v", err)
	}
	f.checkGrant(t)
}

// A record whose flavor no imported package registers is an error that
// says so, before anything is sent.
func TestUnknownFlavor(t *testing.T) {
	st := storage.NewStore(memory.New(nil))
	st.Update(context.Background(), "p", func(r *storage.Record) error {
		r.ClientID, r.ClientSecret, r.TokenURL, r.Flavor = "app", "s", "http://127.0.0.1:1/token", "no-such-flavor"
		r.Seed("rt")
		return nil
	})
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Token(context.Background()); !errors.Is(err, credentials.ErrUnknownFlavor) {
		t.Fatalf("got %v; want ErrUnknownFlavor", err)
	}
	if _, ok := credentials.LookupFlavor(""); !ok {
		t.Fatal("the built-in flavor is not found")
	}
}

// Simulation seed 5786: the store restarts empty while a refresh is at the
// server, the call fails, and the store fails the first attempt to release
// the lease (refused: certainly not applied). The record the refresher
// leased is the only copy left; it goes back while the lease lasts instead
// of being given up after one try.
func TestFailedRefreshRestoresVanishedRecordThroughStoreFaults(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, func(c *credentials.Config) { c.MaxRetries = -1 })
	seeded := f.record(t).RefreshToken.Reveal()
	hold := f.srv.HoldRefreshes(oauthtest.BeforeRotate)
	go func() {
		<-hold.Arrived()
		if err := f.direct().Delete(context.Background(), "p"); err != nil { // restarted empty
			t.Error(err)
		}
		f.flaky.refused.Store(true)
		hold.Drop() // the call fails before the server rotates
		time.Sleep(100 * time.Millisecond)
		f.flaky.refused.Store(false)
	}()
	if _, err := c.Token(context.Background()); err == nil {
		t.Fatal("Token succeeded though the token call was cut off")
	}
	rec := f.record(t)
	if rec.RefreshToken.Reveal() != seeded || rec.Lease != nil {
		t.Fatalf("restored record: refresh token kept %v, lease %v; want the leased record back without its lease",
			rec.RefreshToken.Reveal() == seeded, rec.Lease)
	}
	f.checkGrant(t)
}

// Simulation seed 4882: the write of a rotated token is refused (certainly
// not applied) and the store then loses the profile. The background flush
// keeps failing to read the store until the writer's lease is over. A
// failed read writes nothing, so the held-back token is still known never
// to have landed, and goes back once the store answers.
func TestHeldBackTokenStaysUnappliedThroughFailedReads(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 400 * time.Millisecond })
	tok := f.tokenWithFault(t, c, &f.flaky.refused)
	if err := f.direct().Delete(context.Background(), "p"); err != nil { // restarted empty
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // the lease ends; the flushes keep failing
	f.flaky.refused.Store(false)
	if err := c.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if rec := f.record(t); rec.AccessToken != tok.AccessToken {
		t.Fatal("the held-back token was not restored")
	}
	f.checkGrant(t)
}

// Simulation seed 10056: after a failed call, releasing the lease lands
// but is reported as failed. Another replica may then take the lease,
// refresh past the released token, and lose its record to an eviction. A
// retry that put the released token back would replay a spent token, so a
// release that may have landed is not tried again.
func TestReleaseThatMayHaveLandedIsNotRetried(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, func(c *credentials.Config) { c.MaxRetries = -1 })
	var once sync.Once
	evict := func() {
		once.Do(func() {
			if err := f.flaky.Adapter.Delete(context.Background(), "p", driver.Condition{}); err != nil {
				t.Error(err)
			}
		})
	}
	f.flaky.afterLostReply.Store(&evict)
	hold := f.srv.HoldRefreshes(oauthtest.BeforeRotate)
	go func() {
		<-hold.Arrived()
		f.flaky.lostReply.Store(true)
		hold.Drop() // the call fails; the release that follows lands unseen
	}()
	if _, err := c.Token(context.Background()); err == nil {
		t.Fatal("Token succeeded though the token call was cut off")
	}
	f.flaky.lostReply.Store(false)
	if _, _, err := f.direct().Load(context.Background(), "p"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after the eviction the store holds a record again (%v): a released token was put back", err)
	}
}

// Simulation seed 4942: taking the lease took most of it (a loaded store),
// and a token call with its full timeout would have been answered too
// late to store before the lease ended, when another replica may take
// over and spend the same token. The refresher does not call with a lease
// that cannot cover the call and its write: it takes a fresh one first.
func TestNoTokenCallOnALeaseTooShortForIt(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, func(c *credentials.Config) {
		c.LeaseTTL, c.RefreshTimeout, c.StoreTimeout = time.Second, 600*time.Millisecond, 200*time.Millisecond
	})
	f.flaky.slowBy = 600 * time.Millisecond
	f.flaky.slowPuts.Store(1) // the lease put
	before := f.flaky.puts.Load()
	hold := f.srv.HoldRefreshes(oauthtest.BeforeRotate)
	putsAtCall := make(chan int64, 1)
	go func() {
		<-hold.Arrived()
		putsAtCall <- f.flaky.puts.Load() - before
		hold.Release()
	}()
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatalf("Token: %v", err)
	}
	if n := <-putsAtCall; n < 3 {
		t.Fatalf("the token call went out after %d store writes: on the slowly taken lease, not after releasing it and taking a fresh one", n)
	}
	f.checkGrant(t)
}

// Review 7: the store loses the profile while a refresh is at the server,
// and a replica with a Grant (which needs nothing stored) takes the lease
// on the emptied profile: its first write is the lease alone. The call
// then fails. The refresher's record must not go back over that lease:
// two refreshers would hold the profile at once, and the other's new
// tokens would be dropped as another grant's.
func TestFailedRefreshDoesNotRestoreOverAnotherReplicasLease(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, func(c *credentials.Config) { c.MaxRetries = -1 })
	hold := f.srv.HoldRefreshes(oauthtest.BeforeRotate)
	go func() {
		<-hold.Arrived()
		ctx := context.Background()
		if err := f.direct().Delete(ctx, "p"); err != nil { // restarted empty
			t.Error(err)
		}
		taken := &storage.Record{Profile: "p", Lease: &storage.Lease{Owner: "grant-replica", Until: time.Now().Add(time.Minute), TTL: storage.Duration(time.Minute)}}
		if _, err := f.direct().Replace(ctx, nil, "", taken); err != nil {
			t.Error(err)
		}
		hold.Drop() // the call fails before the server rotates
	}()
	if _, err := c.Token(context.Background()); err == nil {
		t.Fatal("Token succeeded though the token call was cut off")
	}
	if rec := f.record(t); rec.Lease == nil || rec.Lease.Owner != "grant-replica" {
		t.Fatalf("the other replica's lease was replaced (lease %v, refresh token restored %v)", rec.Lease, rec.RefreshToken != "")
	}
}

// Simulation seed 7563: a process journalled a rotated token, was closed
// during the outage and restarted; the store answers again. Flush on the
// new process writes the journalled token at once, as a refresh flight
// would, instead of leaving it until the next refresh.
func TestFlushReplaysTheJournal(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c1 := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 400 * time.Millisecond })
	tok := f.tokenWithFault(t, c1, &f.flaky.refused)
	if err := c1.Close(); !errors.Is(err, credentials.ErrUnpersisted) {
		t.Fatalf("Close during the outage: %v", err)
	}
	f.flaky.refused.Store(false)
	c2 := f.creds(t, nil)
	if err := c2.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if rec := f.record(t); rec.AccessToken != tok.AccessToken {
		t.Fatal("Flush left the journalled token in the journal")
	}
	f.checkGrant(t)
}
