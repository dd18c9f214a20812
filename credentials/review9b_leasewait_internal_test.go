package credentials

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// The journal is settled only once a flight has waited out the stored
// lease. The entry a crashed refresher leaves comes with its lease on the
// stored record (taken before the token call, never cleared: the write
// that would have cleared it is the one that failed). So the process that
// replaces it (a restart, another process of the machine) no longer finds
// the valid access token the entry holds: every caller of Token waits a
// whole LeaseTTL (30 s by default, counted from the first sighting) before
// the entry is replayed and adopted. Before 2d6fbb6 the replay came first
// and the token was there at once. The entry's lease is the writer's own,
// and it is on this machine's clock: the replayer could tell it is the
// entry's (same owner, same Until) and settle without waiting. dc50400
// (on main) settles at the top of every pass again: a guard from then on.
func TestReview9bCrashedWritersLeaseDelaysItsOwnEntrysReplay(t *testing.T) {
	srv, rec := review9bServer(t)
	ctx := context.Background()
	world := faultstore.NewWorld(memory.New(nil))
	adA := world.Adapter("a", rand.New(rand.NewPCG(1, 2)), faultstore.Rates{})
	dir := t.TempDir()
	const leaseTTL = 6 * time.Second
	mk := func(st *storage.Store) *Credentials {
		c, err := New(Config{Store: st, Profile: "p", JournalDir: dir, LeaseTTL: leaseTTL,
			PollInterval: 10 * time.Millisecond, RetryBackoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := mk(storage.NewNamedStore("review9b-lease", adA))
	if _, err := a.store.Replace(ctx, nil, "", rec.Clone()); err != nil {
		t.Fatal(err)
	}
	// A refreshes; its link to the store fails right after the call, so
	// generation 1 goes to the journal; A exits.
	srv.SetFaultFunc(func(oauthtest.Call) oauthtest.Fault { adA.Partition(true); return 0 })
	if _, err := a.Token(ctx); err != nil {
		t.Fatalf("A's Token: %v", err)
	}
	srv.SetFaultFunc(nil)
	var ue *UnpersistedError
	if err := a.Close(); !errors.As(err, &ue) || ue.Journal == "" {
		t.Fatalf("A's Close: %v, want an UnpersistedError naming its journal entry", err)
	}

	// A restarts (or another process of the machine starts).
	b := mk(storage.NewNamedStore("review9b-lease", world.Adapter("b", rand.New(rand.NewPCG(3, 4)), faultstore.Rates{})))
	tctx, cancel := context.WithTimeout(ctx, leaseTTL/3)
	defer cancel()
	if tok, err := b.Token(tctx); err != nil || !tok.Valid(time.Now()) {
		t.Fatalf("Token within a third of the lease: %v; generation 1's valid access token sits in the journal while the flight waits out its writer's lease", err)
	}
}
