package credentials

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/reexec"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/sqlite"
)

const review9CrashChildEnv = "TOKENCACHE_REVIEW9_CRASH_CHILD"

// landsThenHangs applies a Put, says so on stdout, and hangs: the process
// is killed there, its write in the store and its journal entry not yet
// removed.
type landsThenHangs struct{ driver.Adapter }

func (a landsThenHangs) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	rev, err := a.Adapter.Put(ctx, key, value, cond)
	if err == nil {
		os.Stdout.WriteString("landed\n")
		time.Sleep(time.Minute)
	}
	return rev, err
}

// A writer's entry says "no write of it landed" (its earlier writes were
// refused) until a write fails in a way that may have landed. A write
// that succeeds changes nothing in the entry: its removal comes after.
// Process A's flush of generation 1 lands, and A is killed (OOM, SIGKILL,
// a power cut) before it removes the entry. The lock dies with A. Another
// replica reads generation 1 and rotates it; the store loses the profile.
// Process B replays A's entry: it still says no write of it landed, so
// generation 1, spent, goes into the emptied store, for every replica to
// present. The flag is flipped only after a failed write; a write that
// succeeded, and then its writer died, is a write that landed all the
// same. (The window predates the entry locks, but the lock now hands the
// entry over the instant its writer dies.)
func TestReview9WriterKilledAfterItsWriteLandedReplaysSpentToken(t *testing.T) {
	ctx := context.Background()
	if spec := os.Getenv(review9CrashChildEnv); spec != "" {
		parts := strings.SplitN(spec, "|", 3)
		dir, db, path := parts[0], parts[1], parts[2]
		ad, err := sqlite.Open(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(Config{Store: storage.NewNamedStore(ad.StoreName(), landsThenHangs{ad}), Profile: "p", JournalDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		rec, unapplied, err := c.journal.load(path)
		if err != nil || !unapplied {
			t.Fatalf("child: entry: unapplied %v, %v", unapplied, err)
		}
		c.mu.Lock()
		c.pending = &pendingWrite{rec: rec, journal: path, leaseEnd: time.Now().Add(-time.Second), notApplied: true, err: storage.ErrUnavailable}
		c.mu.Unlock()
		c.flushPending(ctx)
		t.Fatal("child: the flush returned; it was to be killed in its write")
	}

	gen0, gen1 := review9Gens()
	dir := t.TempDir()
	db := filepath.Join(t.TempDir(), "tokens.db")
	ad, err := sqlite.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := storage.NewNamedStore(ad.StoreName(), ad)
	b := review9Open(t, st, dir)
	if _, err := st.Replace(ctx, nil, "", gen0.Clone()); err != nil {
		t.Fatal(err)
	}
	path, err := b.journal.save(st.Name(), gen1, true)
	if err != nil {
		t.Fatal(err)
	}

	cmd := reexec.Command(ctx, t.Name(), review9CrashChildEnv, dir+"|"+db+"|"+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	landed := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "landed" {
				landed <- true
				return
			}
		}
		landed <- false
	}()
	select {
	case ok := <-landed:
		if !ok {
			t.Fatal("the child's write did not land")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child's write did not land in 30s")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	cur, _, err := st.Load(ctx, "p")
	if err != nil || cur.RefreshToken.Reveal() != "rt-1" {
		t.Fatalf("generation 1 not in the store after the child's write: %v", err)
	}
	// Another replica refreshes generation 1; then the store loses the
	// profile.
	if _, _, err := st.UpdateLease(ctx, "p", func(r *storage.Record) error { r.Rotate("rt-2"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	rerr := b.replayJournal(ctx)
	if cur, _, err := st.Load(ctx, "p"); err == nil && cur.RefreshToken.Reveal() == "rt-1" {
		t.Fatalf("B put spent generation 1 back into the emptied store: A's write of it had landed before A died (replay: %v)", rerr)
	}
}
