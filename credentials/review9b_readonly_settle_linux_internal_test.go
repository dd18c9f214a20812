//go:build linux

package credentials

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// settle's "touched" sends the flight back to read the store whenever a
// replay wrote an entry, on the ground that the entry is then gone. It is
// not when its removal fails, and remove ignores the failure: a journal
// directory that went read-only (a filesystem remounted read-only after a
// disk error, a directory an operator froze with chmod) keeps every
// entry. An entry whose record the store holds already (its write landed
// and its writer died before removing it) is then replayed with success
// on every pass: the flight rewrites the store in a tight loop until its
// deadline (2*LeaseTTL + (MaxRetries+2)*RefreshTimeout), never refreshes,
// and fails; so does the next flight. Before 2d6fbb6 the replay ran once
// per pass and the flight went on to refresh. dc50400 (on main) settles
// at the top of every pass again, without the touched loop: this passes
// there and stays as a guard.
func TestReview9bUnremovableEntryMakesEveryFlightSpinUntilItsDeadline(t *testing.T) {
	srv, rec := review9bServer(t)
	var puts atomic.Int64
	st := storage.NewNamedStore("review9b-ro", countedPuts{Adapter: memory.New(nil), n: &puts})
	ctx := context.Background()
	if _, err := st.Replace(ctx, nil, "", rec.Clone()); err != nil {
		t.Fatal(err)
	}
	dir, readOnly := review9bReadOnlyDir(t)
	c, err := New(Config{Store: st, Profile: "p", JournalDir: dir, LeaseTTL: 2 * time.Second,
		PollInterval: 10 * time.Millisecond, RetryBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The store has the entry's record: its writer's write landed, and the
	// writer died before it removed the entry. Someone locked the entry
	// once, so its lock file is there.
	path, err := c.journal.save(st.Name(), rec, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly()

	puts.Store(0)
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	began := time.Now()
	tok, err := c.Token(tctx)
	took := time.Since(began)
	refreshes := srv.Stats().RefreshCalls
	if err != nil || !tok.Valid(time.Now()) || puts.Load() > 20 {
		t.Fatalf("Token after %v: %v; %d store writes, %d refreshes: the flight replays the unremovable entry in a loop instead of refreshing",
			took.Round(time.Millisecond), err, puts.Load(), refreshes)
	}
}

// The same read-only journal directory, for an entry nobody has locked
// yet: lockEntry must create the entry's lock file (2d6fbb6 moved the
// flock from the entry to a file beside it), cannot, and settle fails.
// Every flight of the profile that needs a refresh then fails with
// ErrUnpersisted, though the store is up and holds the entry's record: a
// journal directory that went read-only stops the profile's refreshes on
// the machine. Before 2d6fbb6 the lock was taken on the entry itself,
// opened read-only, and the flight went on to refresh. (README lists "a
// read-only file system" among the faults tested.)
func TestReview9bReadOnlyJournalFailsEveryRefresh(t *testing.T) {
	srv, rec := review9bServer(t)
	st := storage.NewNamedStore("review9b-ro2", memory.New(nil))
	ctx := context.Background()
	if _, err := st.Replace(ctx, nil, "", rec.Clone()); err != nil {
		t.Fatal(err)
	}
	dir, readOnly := review9bReadOnlyDir(t)
	c, err := New(Config{Store: st, Profile: "p", JournalDir: dir, LeaseTTL: 2 * time.Second,
		PollInterval: 10 * time.Millisecond, RetryBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.journal.save(st.Name(), rec, false); err != nil {
		t.Fatal(err)
	}
	readOnly()

	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tok, err := c.Token(tctx)
	if err != nil || !tok.Valid(time.Now()) {
		t.Fatalf("Token: %v (%d refreshes): a read-only journal directory stops the profile's refreshes", err, srv.Stats().RefreshCalls)
	}
}
