package credentials_test

// Hostile review of the lineage rule (issue 11). Each test here is a path
// that replays a spent refresh token or drops a live one; it fails on the
// code as reviewed.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/file"
)

// journalTo makes f's first refresh end in the journal: the server rotates,
// then the store goes down before the write. It returns the closed
// Credentials' UnpersistedError.
func journalTo(t *testing.T, f *fixture, c *credentials.Credentials, refresh func() error) *credentials.UnpersistedError {
	t.Helper()
	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	go func() {
		<-hold.Arrived()
		f.flaky.down.Store(true)
		hold.Release()
	}()
	if err := refresh(); err != nil {
		t.Fatalf("refresh with the store going down: %v", err)
	}
	err := c.Close()
	var ue *credentials.UnpersistedError
	if !errors.As(err, &ue) || ue.Journal == "" {
		t.Fatalf("Close during the outage: %v, want an UnpersistedError naming the journal", err)
	}
	f.flaky.down.Store(false)
	return ue
}

// R1. The journal is replayed only by a Credentials' first flight. A
// process already running on the same machine (a daemon beside a cron job
// running `tokencache token`, or a second Credentials in one process)
// never looks at entries written after its start: once the dead process's
// lease runs out it takes over and spends the refresh token the server
// rotated, while the successor sits in the journal next to it.
func TestReviewRunningProcessIgnoresNewerJournalEntry(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	short := func(c *credentials.Config) { c.LeaseTTL = 300 * time.Millisecond }
	daemon := f.creds(t, short)
	if _, err := daemon.Token(context.Background()); err != nil { // its one replay happens here
		t.Fatal(err)
	}
	cli := f.creds(t, short) // same store, same journal dir: the same machine
	journalTo(t, f, cli, func() error { _, err := cli.Refresh(context.Background(), nil); return err })

	// The store is back. The daemon's token is rejected by a resource
	// server, or simply expires.
	if _, err := daemon.Refresh(context.Background(), nil); err != nil {
		t.Logf("daemon refresh: %v", err)
	}
	if n := f.srv.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detection(s): the running process spent the token whose successor was in the journal on the same machine", n)
	}
	f.checkGrant(t)
}

// R2. A journal entry (or a pending write) is a successor write, but the
// store admits it as a "new grant" whenever the profile does not list its
// grant as seen. After `tokencache rm` (or Profiles.Remove, or a cache
// that evicted the profile) and a fresh init, the profile has no history:
// the replay overwrites the new grant with the old grant's token, under
// the new profile's client, and removes the journal entry. The new grant's
// refresh token is dropped and the profile can no longer refresh.
func TestReviewJournalReplayOverReinitialisedProfile(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	old := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 300 * time.Millisecond })
	journalTo(t, f, old, func() error { _, err := old.Token(context.Background()); return err })

	// The operator removes the profile and initialises it for another app.
	ctx := context.Background()
	if err := f.store.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	f.srv.AddClient("other-app", "other-secret")
	fresh := f.srv.IssueRefreshToken("other-app")
	if _, _, err := f.store.Update(ctx, "p", func(r *storage.Record) error {
		r.ClientID, r.ClientSecret, r.TokenURL = "other-app", "other-secret", f.srv.TokenURL()
		r.Seed(fresh)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	c := f.creds(t, nil) // the next process on the machine replays the journal
	_, err := c.Token(ctx)
	rec := f.record(t)
	// The new grant may have been refreshed since: what matters is that the
	// stored token descends from it and still works.
	if rec.Lineage.Grant != storage.SeedGrant(fresh) || rec.ClientID != "other-app" || !f.srv.ValidRefresh(rec.RefreshToken.Reveal()) {
		_, rerr := c.Refresh(ctx, nil)
		t.Fatalf("the re-initialised profile's refresh token was replaced by the old grant's journal entry (Token: %v; next refresh: %v); the new grant is dropped (still valid at the server: %v)",
			err, rerr, f.srv.ValidRefresh(fresh))
	}
	if err != nil {
		t.Fatal(err)
	}
}

// R3. The journal is keyed by storage.Store.Name, the URL as given. Two
// different files opened as file:creds.json from two directories (the CLI
// passes --store verbatim) share one name, so an entry journalled for one
// store is replayed into the other: the second store's grant is replaced
// by the first's token, and the first store, whose entry was consumed,
// refreshes with the token the server rotated.
func TestReviewJournalSharedByTwoStoresOfTheSameRelativeURL(t *testing.T) {
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	t.Chdir(dirA)
	stA, err := storage.Open(ctx, "file:creds.json")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stA.Close() })
	t.Chdir(dirB)
	stB, err := storage.Open(ctx, "file:creds.json")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stB.Close() })
	pa, pb := stA.Adapter().(*file.Adapter).Path(), stB.Adapter().(*file.Adapter).Path()
	if pa == pb {
		t.Fatal("test set-up: the two stores are the same file")
	}
	t.Logf("store A %s and store B %s are both named %q", pa, pb, stA.Name())

	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("storm-client", "storm-secret")
	seed := func(st *storage.Store) string {
		rt := srv.IssueRefreshToken("storm-client")
		if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error {
			*r = storage.Record{Profile: "p", ClientID: "storm-client", ClientSecret: "storm-secret", TokenURL: srv.TokenURL()}
			r.Seed(rt)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return rt
	}
	seed(stA)
	rtB := seed(stB)

	// Store A's refresh ends in the journal (A's disk was full, say).
	journal := t.TempDir()
	fl := &flaky{Adapter: stA.Adapter()}
	f := &fixture{srv: srv, store: storage.NewNamedStore(stA.Name(), fl), flaky: fl, journal: journal}
	ca := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 300 * time.Millisecond })
	journalTo(t, f, ca, func() error { _, err := ca.Token(ctx); return err })

	// A process of project B starts on the same machine.
	cb, err := credentials.New(credentials.Config{Store: stB, Profile: "p", JournalDir: journal, LeaseTTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cb.Close() })
	if _, err := cb.Token(ctx); err != nil {
		t.Logf("B's Token: %v", err)
	}
	recB, _, err := stB.Load(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(journal, "*.json"))
	if recB.Lineage.Grant != storage.SeedGrant(rtB) || len(left) == 0 {
		t.Fatalf("store A's journal entry was replayed into store B (B's grant %q, want %q; %d entries left): B's grant is dropped and A's rotated token is gone from the journal",
			recB.Lineage.Grant, storage.SeedGrant(rtB), len(left))
	}
}

// R7. A journal that is configured but cannot be written (the default
// ~/.config on a read-only root filesystem, a full disk) is worse than no
// journal: persistDurably stops retrying the store at the first failure
// whenever a journal is configured, so a store blip far shorter than the
// lease makes Token fail with the rotated token held in memory only, where
// JournalDir "-" rides the same blip out.
func TestReviewUnwritableJournalGivesUpOnTheStoreAtOnce(t *testing.T) {
	for _, tc := range []struct{ name, dir string }{{"no journal", "-"}, {"unwritable journal", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, oauthtest.Options{Rotate: true})
			dir := tc.dir
			if dir == "" {
				blocker := filepath.Join(t.TempDir(), "not-a-dir")
				if err := os.WriteFile(blocker, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				dir = filepath.Join(blocker, "journal")
			}
			c := f.creds(t, func(c *credentials.Config) { c.JournalDir = dir })
			hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
			go func() {
				<-hold.Arrived()
				f.flaky.down.Store(true)
				hold.Release()
				time.Sleep(150 * time.Millisecond) // a blip: the lease is 2 s
				f.flaky.down.Store(false)
			}()
			if _, err := c.Token(context.Background()); err != nil {
				t.Fatalf("Token through a 150 ms store blip with a 2 s lease: %v", err)
			}
		})
	}
}

// R11. A waiter counts the holder's lease from when it first saw it, and
// keeps counting while the store is down. The holder, whose write failed,
// can only put its rotated token in the store once the store is back, and
// its background writer retries with a backoff of up to 64 x RetryBackoff
// (6.4 s with the default 100 ms, used here).
// After an outage longer than the lease the waiter takes the lease on its
// first read and spends the refresh token the holder has rotated, before
// the holder's next retry comes round. (The holder did everything right:
// its token is journalled and Token succeeded.)
func TestReviewOutageLongerThanLeaseWaiterSpendsRotatedToken(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	holder := f.creds(t, func(c *credentials.Config) {
		c.LeaseTTL = 500 * time.Millisecond
		c.RetryBackoff = 100 * time.Millisecond
	})
	// Another machine (its own journal) reaching the same store, which is
	// down for it too.
	other := &fixture{srv: f.srv, store: storage.NewNamedStore(f.store.Name(), f.flaky), journal: t.TempDir()}
	waiter := other.creds(t, func(c *credentials.Config) { c.LeaseTTL = 500 * time.Millisecond })

	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	got := make(chan error, 1)
	go func() { _, err := holder.Token(context.Background()); got <- err }()
	<-hold.Arrived()
	waited := make(chan error, 1)
	go func() {
		// The other replica's callers keep asking for a token.
		for {
			_, err := waiter.Token(context.Background())
			if err == nil || !errors.Is(err, storage.ErrUnavailable) {
				waited <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond) // the waiter has seen the lease
	f.flaky.down.Store(true)
	hold.Release()
	if err := <-got; err != nil {
		t.Fatalf("holder's Token: %v", err)
	}
	time.Sleep(3 * time.Second) // the outage outlasts the lease
	f.flaky.down.Store(false)
	err := <-waited
	if n := f.srv.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detection(s) (waiter: %v): after the outage the waiter spent the token the holder had rotated and journalled", n, err)
	}
}

// Held: a journal entry replayed into a profile re-granted with its
// history kept (init --force, login, a new seed) is refused and the new
// grant stays.
func TestReviewHeldJournalReplayOverKeptHistoryRegrant(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	old := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 300 * time.Millisecond })
	journalTo(t, f, old, func() error { _, err := old.Token(context.Background()); return err })
	fresh := f.srv.IssueRefreshToken("storm-client")
	if _, _, err := f.store.Update(context.Background(), "p", func(r *storage.Record) error { r.Grant(fresh); r.AccessToken = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	c := f.creds(t, nil)
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.checkGrant(t)
	if rec := f.record(t); rec.Lineage.Gen != 1 {
		t.Fatalf("the new grant is at generation %d, want 1", rec.Lineage.Gen)
	}
}

// Held: Revoke, then the same seed again: the revoked seed is not put
// back.
func TestReviewHeldRevokeThenSameSeed(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	ctx := context.Background()
	seed := f.srv.IssueRefreshToken("storm-client")
	f.store.Update(ctx, "p", func(r *storage.Record) error { r.Seed(seed); return nil })
	c := f.creds(t, nil)
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, f.srv.RevokeURL()); err != nil {
		t.Fatal(err)
	}
	f.store.Update(ctx, "p", func(r *storage.Record) error {
		if r.Seed(seed) {
			t.Error("the revoked seed was taken again")
		}
		return nil
	})
	if rec := f.record(t); rec.RefreshToken != "" {
		t.Fatal("a refresh token came back after revocation")
	}
}
