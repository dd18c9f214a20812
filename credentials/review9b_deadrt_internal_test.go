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

// 2d6fbb6 moved the journal's settle from the top of every pass of a
// flight to just before the lease is taken. refreshable's check of a
// refresh token the server rejected (deadRT) comes before that, so a
// process that once saw the stored token rejected never replays the
// journal again while the store keeps that token, even when the journal
// holds its live successor.
//
// Process B presents generation 0 and the server answers invalid_grant
// (a transient rejection: a region that has not yet seen the token, a
// server that rejects without revoking). B marks it dead. Process A, on
// the same machine, refreshes generation 0 with success, cannot store
// generation 1 (its store link fails), journals it and exits: Close says
// the token "will be written by the next process that uses the profile
// on this machine". B is that process, but every Token call of B's now
// fails with ErrReauthRequired without looking at the journal; an
// operator who then logs in again strands generation 1, the grant's live
// token, as a foreign entry. On e104623 B's next flight replayed A's
// entry first and went on with generation 1; so does dc50400 (on main),
// which settles at the top of every pass again: a guard from then on.
func TestReview9bDeadStoredTokenHidesTheJournalsSuccessor(t *testing.T) {
	srv, rec := review9bServer(t)
	ctx := context.Background()
	world := faultstore.NewWorld(memory.New(nil))
	adA := world.Adapter("a", rand.New(rand.NewPCG(1, 2)), faultstore.Rates{})
	adB := world.Adapter("b", rand.New(rand.NewPCG(3, 4)), faultstore.Rates{})
	dir := t.TempDir()
	mk := func(st *storage.Store) *Credentials {
		c, err := New(Config{Store: st, Profile: "p", JournalDir: dir, LeaseTTL: 2 * time.Second,
			PollInterval: 10 * time.Millisecond, RetryBackoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	b := mk(storage.NewNamedStore("review9b-dead", adB))
	a := mk(storage.NewNamedStore("review9b-dead", adA))
	if _, err := b.store.Replace(ctx, nil, "", rec.Clone()); err != nil {
		t.Fatal(err)
	}

	srv.FailNext(1, oauthtest.FaultInvalidGrant)
	if _, err := b.Token(ctx); !errors.Is(err, ErrReauthRequired) {
		t.Fatalf("B's first Token: %v, want ErrReauthRequired", err)
	}

	// A's refresh succeeds at the server; then A's link to the store
	// fails, so generation 1 goes to the journal, and A exits.
	srv.SetFaultFunc(func(oauthtest.Call) oauthtest.Fault { adA.Partition(true); return 0 })
	if _, err := a.Token(ctx); err != nil {
		t.Fatalf("A's Token: %v", err)
	}
	srv.SetFaultFunc(nil)
	var ue *UnpersistedError
	if err := a.Close(); !errors.As(err, &ue) || ue.Journal == "" {
		t.Fatalf("A's Close: %v, want an UnpersistedError naming its journal entry", err)
	}
	if cur, _, err := b.store.Load(ctx, "p"); err != nil || cur.RefreshToken != rec.RefreshToken {
		t.Fatalf("the store should still hold generation 0: %v", err)
	}

	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := b.Token(tctx)
	if err != nil || !tok.Valid(time.Now()) {
		cur, _, _ := b.store.Load(ctx, "p")
		t.Fatalf("B's Token with generation 1 in the journal (%s): %v; the store keeps generation 0 (%v)",
			ue.Journal, err, cur != nil && cur.RefreshToken == rec.RefreshToken)
	}
}
