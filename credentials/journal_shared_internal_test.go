package credentials

// The recovery journal is shared by the processes of one machine: a
// replaying process and the entry's writer must agree on what happened
// to the entry's record.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/reexec"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// landsThenFails applies the next Put but reports it failed, as a write
// whose reply was lost.
type landsThenFails struct {
	driver.Adapter
	arm atomic.Bool
}

func (a *landsThenFails) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	rev, err := a.Adapter.Put(ctx, key, value, cond)
	if err == nil && a.arm.CompareAndSwap(true, false) {
		return "", driver.Wrap(storage.ErrUnavailable, "reply lost", nil)
	}
	return rev, err
}

// A's write of generation 1 certainly did not land, so A holds it as free
// to go into an emptied store. Process B replays A's entry; that write
// lands but its reply is lost, and B rewrites the entry to say a write may
// have landed. Other replicas read generation 1 and rotate it; the store
// loses the profile. A, its lease over, must go by what the entry says
// now, not by what A knew when it wrote it: putting generation 1 back
// would hand the fleet a spent token.
func TestJournalEntryMarkedMaybeAppliedByAnotherProcessBindsItsWriter(t *testing.T) {
	gen0 := &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token"}
	gen0.Seed("rt-0")
	gen1 := gen0.Clone()
	gen1.Rotate("rt-1")

	inner := memory.New(nil)
	flaky := &landsThenFails{Adapter: inner}
	ctx := context.Background()
	dir := t.TempDir()
	open := func(a driver.Adapter) *Credentials {
		c, err := New(Config{Store: storage.NewNamedStore("shared-journal", a), Profile: "p", JournalDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(inner), open(flaky)
	if _, err := a.store.Replace(ctx, nil, "", gen0.Clone()); err != nil {
		t.Fatal(err)
	}
	path, err := a.journal.save(a.store.Name(), gen1, true)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.pending = &pendingWrite{rec: gen1, journal: path, leaseEnd: time.Now().Add(-time.Second), notApplied: true, err: storage.ErrUnavailable}
	a.mu.Unlock()

	flaky.arm.Store(true)
	if err := b.replayJournal(ctx); !errors.Is(err, ErrUnpersisted) {
		t.Fatalf("B's replay whose reply was lost: %v, want ErrUnpersisted", err)
	}
	if _, unapplied, err := b.journal.load(path); err != nil || unapplied {
		t.Fatalf("B left the entry saying no write of it landed (err %v)", err)
	}
	if _, _, err := b.store.UpdateLease(ctx, "p", func(r *storage.Record) error { r.Rotate("rt-2"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := inner.Delete(ctx, "p", driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	a.flushPending(ctx)
	if cur, _, err := a.store.Load(ctx, "p"); err == nil && cur.RefreshToken.Reveal() == "rt-1" {
		t.Fatal("A put spent generation 1 back into the emptied store although B's write of it may have landed")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the entry, held back, is gone: %v", err)
	}
}

const lockChildEnv = "TOKENCACHE_JOURNAL_LOCK_CHILD"

// An entry's lock keeps a replaying process off while another holds it,
// also across processes, and a holder that is SIGKILLed blocks nobody.
func TestJournalEntryLockSpansProcessesAndDiesWithItsHolder(t *testing.T) {
	if path := os.Getenv(lockChildEnv); path != "" {
		unlock, found, err := lockEntry(context.Background(), path)
		if err != nil || !found {
			t.Fatalf("child: lock: found %v, %v", found, err)
		}
		defer unlock()
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		return
	}
	path := filepath.Join(t.TempDir(), "entry.json")
	if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := reexec.Command(context.Background(), t.Name(), lockChildEnv, path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 64)
	if n, _ := out.Read(buf); n == 0 {
		t.Fatal("child did not take the lock")
	}

	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, _, err = lockEntry(short, path)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock held by another process: got %v, want a wait cut by the deadline", err)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, found, err := lockEntry(ctx, path)
	if err != nil || !found {
		t.Fatalf("after the holder died: found %v, %v", found, err)
	}
	unlock()
}

// A waiter that gets the lock after the holder removed the entry, or
// rewrote it (renamed a new file over it), sees that: gone, or the new
// file locked afresh.
func TestJournalEntryLockSeesRemovalAndRewrite(t *testing.T) {
	j := newJournal(t.TempDir(), "store", "p")
	rec := &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token"}
	rec.Seed("rt-0")
	path, err := j.save("store", rec, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		change    func() error
		wantFound bool
	}{
		{"rewritten", func() error { return j.setNotApplied(path, false) }, true},
		{"removed", func() error { return os.Remove(path) }, false},
	} {
		unlock, found, err := j.lock(ctx, path)
		if err != nil || !found {
			t.Fatalf("%s: lock: found %v, %v", tc.name, found, err)
		}
		got := make(chan bool, 1)
		go func() {
			u, found, err := j.lock(ctx, path)
			if err == nil && found {
				u()
			}
			got <- found
		}()
		time.Sleep(20 * time.Millisecond)
		if err := tc.change(); err != nil {
			t.Fatal(err)
		}
		unlock()
		if found := <-got; found != tc.wantFound {
			t.Fatalf("%s: waiter found %v, want %v", tc.name, found, tc.wantFound)
		}
	}
}

// A process whose write of generation 3 failed, and which then exited,
// left it in the journal; its successor process starts while the store
// still holds generation 2 with a valid access token. The successor's
// first flight must write generation 3 at once, although it could simply
// adopt the stored access token: once the dead process's lease lapses,
// replicas on other machines refresh from the store, and generation 2 is
// spent (simulation seed 211221, when replay waited for a refresh).
func TestJournalIsReplayedEvenWhenTheStoredTokenCanBeAdopted(t *testing.T) {
	gen2 := &storage.Record{Profile: "p", ClientID: "client", TokenURL: "https://auth.example/token"}
	gen2.Seed("rt-0")
	gen2.Rotate("rt-1")
	gen2.Rotate("rt-2")
	gen2.AccessToken, gen2.Expiry = "at-2", time.Now().Add(time.Hour)
	gen3 := gen2.Clone()
	gen3.Rotate("rt-3")
	gen3.AccessToken = "at-3"

	inner := memory.New(nil)
	ctx := context.Background()
	dir := t.TempDir()
	c, err := New(Config{Store: storage.NewNamedStore("replay-at-once", inner), Profile: "p", JournalDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.store.Replace(ctx, nil, "", gen2.Clone()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.journal.save(c.store.Name(), gen3, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	cur, _, err := c.store.Load(ctx, "p")
	if err != nil || cur.RefreshToken.Reveal() != "rt-3" {
		t.Fatalf("the store holds %v (%v) after the first flight; want generation 3 from the journal", cur.RefreshToken.Reveal() == "rt-3", err)
	}
}
