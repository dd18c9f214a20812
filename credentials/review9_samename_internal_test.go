package credentials

import (
	"context"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// Two processes of a machine use stores of the same name that are not
// the same store (a sqlite path in two mount namespaces, redis://localhost
// in two network namespaces, or NewNamedStore names picked by hand; the
// library means to tolerate this: errForeign "another store's of the same
// name: leave it"). B's store holds a copy of generation 0 (a staging
// database restored from the same snapshot). B replays A's entry into its
// own store, where generation 1 succeeds generation 0, and removes the
// entry; A, finding it gone, drops generation 1 although A's store never
// got it: A's store keeps the spent generation 0.
func TestReview9ReplayIntoAnotherStoreOfTheSameNameDropsTheWritersToken(t *testing.T) {
	gen0, gen1 := review9Gens()
	ctx := context.Background()
	storeA := storage.NewNamedStore("review9-same-name", memory.New(nil))
	storeB := storage.NewNamedStore("review9-same-name", memory.New(nil))
	for _, st := range []*storage.Store{storeA, storeB} {
		if _, err := st.Replace(ctx, nil, "", gen0.Clone()); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	a, b := review9Open(t, storeA, dir), review9Open(t, storeB, dir)
	review9Pending(t, a, gen1)
	if err := b.replayJournal(ctx); err != nil {
		t.Fatal(err)
	}
	ferr := a.flushPending(ctx)
	cur, _, err := storeA.Load(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	kept := a.pending != nil
	a.mu.Unlock()
	if cur.RefreshToken.Reveal() != "rt-1" && !kept {
		t.Fatalf("A's store keeps spent %q: B wrote generation 1 into its own store of the same name and A dropped it (flush: %v)", cur.RefreshToken.Reveal(), ferr)
	}
}
