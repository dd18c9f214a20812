package credentials

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// flushPending now reads its entry under the lock (journal.hold) and
// gives up when the entry cannot be read. The pending record is intact in
// memory, but an entry that became unreadable (an operator who edited it,
// a disk error, another version's format) makes every flush fail: the
// background writer retries for ever, and every flight of the process
// that needs a refresh fails with ErrUnpersisted, while the store keeps
// the spent generation 0. replayEntry, for the same entry, logs it and
// goes on. Before 2d6fbb6 an unreadable entry did not stop the writer.
func TestReview9bUnreadableEntryBlocksItsWritersPendingForEver(t *testing.T) {
	gen0, gen1 := review9Gens()
	gen0.Expiry = time.Now().Add(-time.Minute) // a flight must refresh
	ctx := context.Background()
	st := storage.NewNamedStore("review9b-corrupt", memory.New(nil))
	if _, err := st.Replace(ctx, nil, "", gen0.Clone()); err != nil {
		t.Fatal(err)
	}
	a := review9Open(t, st, t.TempDir())
	path := review9Pending(t, a, gen1)
	if err := os.WriteFile(path, []byte(`{"store":`), 0o600); err != nil {
		t.Fatal(err)
	}

	ferr := a.Flush(ctx)
	_, terr := a.Token(ctx)
	cur, _, err := st.Load(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if cur.RefreshToken.Reveal() != "rt-1" {
		t.Fatalf("the store keeps spent %q though generation 1 is pending in memory (Flush: %v; Token: %v)", cur.RefreshToken.Reveal(), ferr, terr)
	}
}
