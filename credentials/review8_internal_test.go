package credentials

// Hostile review 8: a path the simulation cannot see, because it seeds a
// record without lineage and never rolls the store back.

import (
	"context"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// A record without lineage (an older version's or pancloud's; the
// simulation seeds one) is rotated twice by this process; the second
// write fails and the successor waits in the journal. The store then
// comes back from an older state (a Redis failover to a lagging replica,
// a restore from a snapshot) holding generation 0, which the server has
// rotated past: the held generation 2 is the only live refresh token.
// applySuccessor restores it over an older generation only when the
// record names its grant; here it calls generation 0 "a newer refresh
// token of the same grant", and the flush drops generation 2 and deletes
// its journal entry. The store keeps a spent token: the next refresh is
// a reuse, and the grant is lost. Generations of a record without a grant
// id are still ordered (Rotate counts them, checkLineage compares them),
// and the held record's Spent list names the stored token as one it
// replaced, so it cannot be another grant's.
func TestReview8LegacyRecordSuccessorIsNotDroppedOverARolledBackStore(t *testing.T) {
	for _, named := range []bool{true, false} {
		gen0 := &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token", RefreshToken: "rt-0"}
		if named {
			gen0.Seed("rt-0")
		}
		gen1 := gen0.Clone()
		gen1.Rotate("rt-1")
		gen2 := gen1.Clone()
		gen2.Rotate("rt-2")

		st := storage.NewNamedStore("review8-rollback:"+t.Name(), memory.New(nil))
		ctx := context.Background()
		if _, err := st.Replace(ctx, nil, "", gen0.Clone()); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		c, err := New(Config{Store: st, Profile: "p", JournalDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		path, err := c.journal.save(st.Name(), gen2, true)
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.pending = &pendingWrite{rec: gen2, journal: path, leaseEnd: time.Now().Add(-time.Second), notApplied: true}
		c.mu.Unlock()
		ferr := c.flushPending(ctx)
		cur, _, err := st.Load(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		kept := c.pending != nil
		c.mu.Unlock()
		if cur.RefreshToken.Reveal() != "rt-2" && !kept {
			t.Errorf("record with a grant id %v: the store kept spent generation 0 and the flush dropped generation 2, the only live token (flush error %v, journal entries left %d)",
				named, ferr, len(c.journal.entries()))
		}
		c.Close()
	}
}

// Two processes on one machine share the recovery journal (its default
// directory is per user, and the demo runs four replica processes on
// one machine); the simulation gives every replica a journal of its own.
// Process A's write of generation 1 failed without applying (its
// connection refused), so A keeps it pending, journalled, as "no write of
// it landed": it may then go into an emptied store at any time. Process B
// replays A's entry at the start of its next flight: the write lands and
// B removes the entry. A's pending record still says that no write of it
// landed. Other replicas read generation 1 and rotate it to 2; the store
// loses the profile (an eviction, a restart without persistence); A's
// flush puts generation 1, now spent, into the emptied store, for the next
// refresh to present: the server revokes the grant.
func TestReview8JournalReplayedByAnotherProcessIsNoLongerUnapplied(t *testing.T) {
	gen0 := &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token"}
	gen0.Seed("rt-0")
	gen1 := gen0.Clone()
	gen1.Rotate("rt-1")

	inner := memory.New(nil)
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Credentials {
		c, err := New(Config{Store: storage.NewNamedStore("review8-shared-journal", inner), Profile: "p", JournalDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := open(), open()
	defer a.Close()
	defer b.Close()
	if _, err := a.store.Replace(ctx, nil, "", gen0.Clone()); err != nil {
		t.Fatal(err)
	}
	// A's state after its write of generation 1 failed before applying
	// and its lease ended.
	path, err := a.journal.save(a.store.Name(), gen1, true)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.pending = &pendingWrite{rec: gen1, journal: path, leaseEnd: time.Now().Add(-time.Second), notApplied: true,
		err: storage.ErrUnavailable}
	a.mu.Unlock()

	// B's flight replays A's entry: generation 1 lands.
	if err := b.replayJournal(ctx); err != nil {
		t.Fatal(err)
	}
	// Another replica rotates generation 1 to 2; then the store loses
	// the profile.
	if _, _, err := b.store.UpdateLease(ctx, "p", func(r *storage.Record) error { r.Rotate("rt-2"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := inner.Delete(ctx, "p", driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	// A's background flush.
	a.flushPending(ctx)
	if cur, _, err := a.store.Load(ctx, "p"); err == nil && cur.RefreshToken.Reveal() == "rt-1" {
		t.Fatal("A put generation 1 back into the emptied store after another process's replay of its journal entry landed it and it was rotated")
	}
}

// The same shared journal, the lease path. A holds generation 1 back
// within its lease (a write of it may have landed; the store then lost
// the profile). A's entry carries A's lease, so process B, replaying it,
// may put it into the emptied store: but it writes it without the lease
// ("it is not ours"). Nothing now keeps the fleet from rotating it at
// once; the store loses the profile again, and A, still within its lease,
// puts generation 1, spent, back: A's restore rests on its lease keeping
// every other refresher away, and B's replay took the lease off. (Fixed
// on A's side: B removed the entry it wrote, and A, finding its entry
// gone, drops its pending record instead of restoring it.)
func TestReview8JournalReplayByAnotherProcessKeepsTheLease(t *testing.T) {
	gen0 := &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token"}
	gen0.Seed("rt-0")
	inner := memory.New(nil)
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Credentials {
		c, err := New(Config{Store: storage.NewNamedStore("review8-shared-journal", inner), Profile: "p", JournalDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := open(), open()
	defer a.Close()
	defer b.Close()
	leaseEnd := time.Now().Add(time.Minute)
	gen1 := gen0.Clone()
	gen1.Lease = &storage.Lease{Owner: a.owner, Until: leaseEnd, TTL: storage.Duration(time.Minute)}
	gen1.Rotate("rt-1")
	path, err := a.journal.save(a.store.Name(), gen1, false)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.pending = &pendingWrite{rec: gen1, journal: path, leaseEnd: leaseEnd, err: storage.ErrUnavailable}
	a.mu.Unlock()

	// The store is empty; B's flight replays A's entry into it.
	if err := b.replayJournal(ctx); err != nil {
		t.Fatal(err)
	}
	cur, _, err := b.store.Load(ctx, "p")
	if err != nil || cur.RefreshToken.Reveal() != "rt-1" {
		t.Fatalf("B did not replay A's entry: %v", err)
	}
	rotated := cur.Lease == nil
	if rotated {
		// Another replica finds no lease and rotates at once; the store
		// loses the profile again.
		if _, _, err := b.store.UpdateLease(ctx, "p", func(r *storage.Record) error { r.Rotate("rt-2"); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := inner.Delete(ctx, "p", driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	a.flushPending(ctx)
	if cur, _, err := a.store.Load(ctx, "p"); err == nil && cur.RefreshToken.Reveal() == "rt-1" && rotated {
		t.Fatal("B's replay of A's entry left no lease; generation 1 was rotated, and A put it back, spent, within its lease")
	}
}
