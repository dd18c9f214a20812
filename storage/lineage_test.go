package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// seeded returns a store whose profile "p" was seeded with refresh token
// "rt0" and then rotated n times by the protocol (rt1 ... rtn).
func seeded(t *testing.T, n int) *storage.Store {
	t.Helper()
	st := storage.NewStore(memory.New(nil))
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error {
		r.ClientID = "id"
		r.Seed("rt0")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error {
			r.Rotate(fmt.Sprintf("rt%d", i))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func stored(t *testing.T, st *storage.Store) string {
	t.Helper()
	r, _, err := st.Load(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	return r.RefreshToken.Reveal()
}

func TestLineage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		write   func(r *storage.Record)
		want    string // refresh token stored afterwards
		lineage bool   // the write fails with ErrLineage
	}{
		{"successor", func(r *storage.Record) { r.Rotate("rt3") }, "rt3", false},
		{"metadata only", func(r *storage.Record) { r.ClientSecret = "new" }, "rt2", false},
		{"same seed again keeps the successor", func(r *storage.Record) { r.Seed("rt0") }, "rt2", false},
		{"unseen seed is a new grant", func(r *storage.Record) { r.Seed("other") }, "other", false},
		{"explicit grant", func(r *storage.Record) { r.Grant("rt0") }, "rt0", false},
		{"token changed without saying why", func(r *storage.Record) { r.RefreshToken = "rt9" }, "rt2", true},
		{"older generation of the same grant", func(r *storage.Record) {
			r.Lineage.Gen = 1
			r.RefreshToken = "rt1"
		}, "rt2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := seeded(t, 2)
			_, _, err := st.Update(ctx, "p", func(r *storage.Record) error { tc.write(r); return nil })
			if got := errors.Is(err, storage.ErrLineage); got != tc.lineage {
				t.Fatalf("err = %v, want ErrLineage: %v", err, tc.lineage)
			}
			if got := stored(t, st); got != tc.want {
				t.Errorf("stored refresh token %q, want %q", got, tc.want)
			}
		})
	}
}

// A write prepared from an older read (a late write after an outage, a
// process partitioned while others rotated) never replaces a newer token,
// and a grant the profile moved past never comes back.
func TestLineageLateWrites(t *testing.T) {
	ctx := context.Background()
	st := seeded(t, 1)
	old, rev, err := st.Load(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	late := old.Clone()
	late.Rotate("rt2-late")
	// Meanwhile another replica rotates twice.
	for _, next := range []string{"rt2", "rt3"} {
		if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error { r.Rotate(next); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Replace on the old revision conflicts; re-applying on the current
	// record is refused by lineage.
	if _, err := st.Replace(ctx, old, rev, late); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Replace on a stale revision: %v, want ErrConflict", err)
	}
	_, _, err = st.Update(ctx, "p", func(r *storage.Record) error {
		r.RefreshToken, r.Lineage.Gen, r.Lineage.Grant = late.RefreshToken, late.Lineage.Gen, late.Lineage.Grant
		return nil
	})
	if !errors.Is(err, storage.ErrLineage) {
		t.Fatalf("late successor: %v, want ErrLineage", err)
	}

	// A new grant, then a late write of the old grant's newest token.
	oldGrant, _, _ := st.Load(ctx, "p")
	if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error { r.Grant("login"); return nil }); err != nil {
		t.Fatal(err)
	}
	_, _, err = st.Update(ctx, "p", func(r *storage.Record) error {
		r.RefreshToken, r.Lineage.Gen, r.Lineage.Grant = "rt4", oldGrant.Lineage.Gen+1, oldGrant.Lineage.Grant
		return nil
	})
	if !errors.Is(err, storage.ErrLineage) {
		t.Fatalf("write of a superseded grant: %v, want ErrLineage", err)
	}
	// No writer can make the profile forget the grants it has seen.
	_, _, err = st.Update(ctx, "p", func(r *storage.Record) error { r.Lineage.Seen = nil; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error { r.Seed("rt0"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, st); got != "login" {
		t.Fatalf("re-seeding a seen seed after Seen was cleared stored %q", got)
	}
}

// A store restored from an old snapshot holds a token the server rotated
// past; the newer successor in hand replaces it.
func TestLineageRollback(t *testing.T) {
	ctx := context.Background()
	st := seeded(t, 1)
	snap, _, _ := st.Load(ctx, "p")
	for _, next := range []string{"rt2", "rt3"} {
		st.Update(ctx, "p", func(r *storage.Record) error { r.Rotate(next); return nil })
	}
	held, _, _ := st.Load(ctx, "p")
	held.Rotate("rt4")
	if err := st.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Replace(ctx, nil, "", snap); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error {
		r.RefreshToken, r.Lineage = held.RefreshToken, held.Lineage
		return nil
	}); err != nil {
		t.Fatalf("successor over a rolled-back store: %v", err)
	}
	if got := stored(t, st); got != "rt4" {
		t.Fatalf("stored %q, want rt4", got)
	}
}

func TestLineageLegacyRecord(t *testing.T) {
	ctx := context.Background()
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	// A pancloud credentials.json entry: no lineage at all.
	legacy := &storage.Record{Profile: "p", ClientID: "id", RefreshToken: "rt-py"}
	if _, err := st.Replace(ctx, nil, "", legacy); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error { r.Rotate("rt-go"); return nil }); err != nil {
		t.Fatalf("rotating a legacy record: %v", err)
	}
	if got := stored(t, st); got != "rt-go" {
		t.Fatalf("stored %q", got)
	}
}

// Update leaves the lease as stored: it belongs to the refresh protocol,
// and a writer that dropped it would let a second refresher spend the token.
func TestUpdateKeepsLease(t *testing.T) {
	ctx := context.Background()
	st := seeded(t, 0)
	cur, rev, _ := st.Load(ctx, "p")
	leased := cur.Clone()
	leased.Lease = &storage.Lease{Owner: "holder", Until: time.Now().Add(time.Minute), TTL: storage.Duration(30 * time.Second)}
	if _, err := st.Replace(ctx, cur, rev, leased); err != nil {
		t.Fatal(err)
	}
	st.Update(ctx, "p", func(r *storage.Record) error {
		r.Lease = nil
		r.ClientSecret = "rotated"
		return nil
	})
	got, _, _ := st.Load(ctx, "p")
	if got.Lease == nil || got.Lease.Owner != "holder" || got.Lease.TTL != storage.Duration(30*time.Second) || got.ClientSecret != "rotated" {
		t.Fatalf("after Update: lease %+v, secret %v", got.Lease, got.ClientSecret)
	}
}
