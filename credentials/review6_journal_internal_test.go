package credentials

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// lostAnswer applies the next Put and then reports it as failed, without
// the ErrNotApplied mark: the answer of a write that landed was lost.
type lostAnswer struct {
	driver.Adapter
	mu   sync.Mutex
	lose bool
	rts  []string // refresh tokens of the records written
}

func (l *lostAnswer) Put(ctx context.Context, k string, v []byte, c driver.Condition) (storage.Revision, error) {
	rev, err := l.Adapter.Put(ctx, k, v, c)
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, derr := storage.DecodeRecord(v); err == nil && derr == nil {
		l.rts = append(l.rts, r.RefreshToken.Reveal())
	}
	if err == nil && l.lose {
		l.lose = false
		return "", driver.Wrap(storage.ErrUnavailable, "lostAnswer: reply lost", nil)
	}
	return rev, err
}

// review 6: a journal entry says its record was never applied (every
// write of its writer failed with ErrNotApplied), so it may go into a
// store that lost the profile. Replaying it is a store write too: when
// that write's answer is lost it may have landed, another replica may
// have read the token and spent it, and the entry must stop claiming
// that no write of it applied. Otherwise the next replay, finding the
// store emptied, puts the spent token back and the server revokes the
// grant.
func TestReview6JournalReplayWithLostAnswerMayHaveApplied(t *testing.T) {
	gen0 := &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token"}
	gen0.Grant("rt-0")
	gen1 := gen0.Clone()
	gen1.Rotate("rt-1")
	gen2 := gen1.Clone()
	gen2.Rotate("rt-2")

	a := &lostAnswer{Adapter: memory.New(nil)}
	st := storage.NewNamedStore("review6-journal:"+t.Name(), a)
	ctx := context.Background()
	if _, err := st.Replace(ctx, nil, "", gen0.Clone()); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Store: st, Profile: "p", JournalDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.journal.save(st.Name(), gen1, true); err != nil {
		t.Fatal(err)
	}

	// The replay writes generation 1 over its predecessor; the write lands
	// but its answer is lost.
	a.mu.Lock()
	a.lose = true
	a.mu.Unlock()
	if err := c.replayJournal(ctx); err == nil {
		t.Fatal("replay with a lost answer succeeded")
	}
	// Another replica read generation 1, spent it, and stored generation
	// 2; then the store lost the profile.
	cur, rev, err := st.Load(ctx, "p")
	if err != nil || cur.RefreshToken.Reveal() != "rt-1" {
		t.Fatalf("the lost write did not land: %v", err)
	}
	if _, err := st.Replace(ctx, cur, rev, gen2.Clone()); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.rts = nil
	a.mu.Unlock()

	err = c.replayJournal(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rt := range a.rts {
		if rt == "rt-1" {
			t.Fatalf("the second replay put generation 1, spent by another replica after the first replay's write landed, into the emptied store (replay: %v)", err)
		}
	}
	if !errors.Is(err, errHeldBack) {
		t.Fatalf("second replay: %v, want the token held back", err)
	}
}
