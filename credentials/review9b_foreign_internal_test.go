package credentials

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// hold rewrites an entry to "a write of it may have landed" before the
// write, and only notLanded sets it back. replayEntry's and flushPending's
// errForeign case skip notLanded, though applySuccessor's refusal changed
// nothing in the store. So one replay by a process whose store of the
// same name holds another grant (the case errForeign is there for: "another
// store's of the same name: leave it") degrades the entry for good.
//
// A's write of generation 1 was refused (nothing landed: the entry and A
// both say so). X replays the entry into its own store, finds another
// grant there and leaves it. A's store then loses the profile (a server
// restarted empty). Generation 1 is the grant's only live token and no
// write of it ever landed, so it must go back; A now holds it back as
// "may have landed and been used by another replica", for an operator to
// restore by hand. Before 2d6fbb6 a foreign replay did not touch the
// entry.
func TestReview9bForeignReplayMarksAnEntryMaybeLanded(t *testing.T) {
	gen0, gen1 := review9Gens()
	ctx := context.Background()
	storeA := storage.NewNamedStore("review9b-foreign", memory.New(nil))
	storeX := storage.NewNamedStore("review9b-foreign", memory.New(nil))
	other := &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token",
		AccessToken: "at-x", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	other.Seed("rt-x")
	if _, err := storeA.Replace(ctx, nil, "", gen0.Clone()); err != nil {
		t.Fatal(err)
	}
	if _, err := storeX.Replace(ctx, nil, "", other); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, x := review9Open(t, storeA, dir), review9Open(t, storeX, dir)
	path := review9Pending(t, a, gen1)

	if err := x.replayJournal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("X should have left A's entry: %v", err)
	}
	_, unapplied, err := a.journal.load(path)
	if err != nil {
		t.Fatal(err)
	}

	if err := storeA.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	ferr := a.flushPending(ctx)
	cur, _, lerr := storeA.Load(ctx, "p")
	if lerr != nil || cur.RefreshToken.Reveal() != "rt-1" {
		t.Fatalf("A's emptied store did not get generation 1 back (flush: %v; load: %v); the entry says not-applied=%v after X's foreign replay, which changed nothing",
			ferr, lerr, unapplied)
	}
}
