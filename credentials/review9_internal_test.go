package credentials

// Hostile review 9: the shared recovery journal's entry locks (an entry
// found gone means "another process wrote it", so its writer drops its
// pending record). Each test fails on the library as reviewed and passes
// on e104623, before the entry locks.

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// review9Gens returns a seeded generation 0 with a valid access token and
// its rotated successor, generation 1.
func review9Gens() (gen0, gen1 *storage.Record) {
	gen0 = &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token",
		AccessToken: "at-0", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	gen0.Seed("rt-0")
	gen1 = gen0.Clone()
	gen1.Rotate("rt-1")
	gen1.AccessToken = "at-1"
	return gen0, gen1
}

// review9Pending makes c hold gen1 pending, journalled as "no write of it
// landed" (as after a refused connection), its lease over.
func review9Pending(t *testing.T, c *Credentials, gen1 *storage.Record) string {
	t.Helper()
	path, err := c.journal.save(c.store.Name(), gen1, true)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.pending = &pendingWrite{rec: gen1, journal: path, leaseEnd: time.Now().Add(-time.Second), notApplied: true, err: storage.ErrUnavailable}
	c.mu.Unlock()
	return path
}

func review9Open(t *testing.T, st *storage.Store, dir string) *Credentials {
	t.Helper()
	c, err := New(Config{Store: st, Profile: "p", JournalDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// An entry can go missing without any process having written it: an
// operator moves it aside (to replay it by hand elsewhere, or because
// UnpersistedError named it), a cleaner sweeps the directory, a later
// version's keepPending removes an older pending's entry unlocked. The
// writer then takes "gone" for "another process wrote it" and drops the
// rotated token it holds in memory, its last copy. The store keeps
// generation 0, which the server rotated: the next refresh presents a
// spent token and the grant is revoked. Before the entry locks, the
// in-memory copy was written regardless of the file.
func TestReview9EntryRemovedByNoWriterDropsTheLastCopy(t *testing.T) {
	gen0, gen1 := review9Gens()
	st := storage.NewNamedStore("review9-removed", memory.New(nil))
	ctx := context.Background()
	if _, err := st.Replace(ctx, nil, "", gen0.Clone()); err != nil {
		t.Fatal(err)
	}
	a := review9Open(t, st, t.TempDir())
	path := review9Pending(t, a, gen1)
	if err := os.Remove(path); err != nil { // not a replay: nobody wrote it
		t.Fatal(err)
	}
	ferr := a.flushPending(ctx)
	cur, _, err := st.Load(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	kept := a.pending != nil
	a.mu.Unlock()
	if cur.RefreshToken.Reveal() != "rt-1" && !kept {
		t.Fatalf("the store keeps spent %q and the writer dropped generation 1, the only live refresh token (flush: %v)", cur.RefreshToken.Reveal(), ferr)
	}
}
