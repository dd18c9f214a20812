package credentials

// Hostile review 8: a path the simulation cannot see, because it seeds a
// record without lineage and never rolls the store back.

import (
	"context"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
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
