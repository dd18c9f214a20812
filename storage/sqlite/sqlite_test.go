package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/dirwatch/dirwatchtest"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/sqlite"
)

func open(t testing.TB, url string) driver.Adapter {
	t.Helper()
	a, err := driver.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestConformance(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "tokens.db")
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return open(t, url) })
}

func TestProcesses(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "tokens.db") + "?table=procs"
	drivertest.RunProcesses(t, url, 4, 200)
}

func BenchmarkStore(b *testing.B) {
	url := "sqlite://" + filepath.Join(b.TempDir(), "tokens.db")
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return open(b, url) })
}

func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "tokens.db")
	a, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Put(context.Background(), "p", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	checks := map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600}
	for p, want := range checks {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, %v; want %v", p, fi.Mode(), err, want)
		}
	}
}

func TestURLs(t *testing.T) {
	ctx := context.Background()
	wd := t.TempDir()
	t.Chdir(wd)
	for _, url := range []string{"sqlite:rel.db", "sqlite:sub/rel.db?table=other_1", "sqlite://" + filepath.Join(wd, "abs.db")} {
		a := open(t, url)
		if _, err := a.Put(ctx, "k", []byte(`{}`), driver.Condition{}); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		a.Close()
	}
	for _, f := range []string{"rel.db", "sub/rel.db", "abs.db"} {
		if _, err := os.Stat(filepath.Join(wd, f)); err != nil {
			t.Error(err)
		}
	}
	for _, bad := range []string{"sqlite:", "sqlite://host/x.db", "sqlite:x.db?table=a;drop", "sqlite:x.db?mode=ro"} {
		if _, err := driver.Open(ctx, bad); !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestTablesAreSeparate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.db")
	a := open(t, "sqlite://"+path+"?table=a")
	b := open(t, "sqlite://"+path+"?table=b")
	defer a.Close()
	defer b.Close()
	if _, err := a.Put(ctx, "k", []byte(`{}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("table b sees table a's key: %v", err)
	}
}

func TestNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	junk := []byte("this is not an SQLite database, and it is long enough to have a header.....................................")
	os.WriteFile(path, junk, 0o600)
	_, err := sqlite.Open(context.Background(), path, nil)
	if !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("Open of a non-database: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(junk) {
		t.Fatal("file overwritten")
	}
}

func TestUncreatableDirectory(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	_, err := sqlite.Open(context.Background(), filepath.Join(blocker, "x.db"), nil)
	if !errors.Is(err, driver.ErrReadOnly) {
		t.Fatalf("Open under a regular file: %v", err)
	}
}

// holdWriteLock takes the database's write lock in a connection of its
// own, as another process's long transaction would.
func holdWriteLock(t *testing.T, path string) (release func()) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		db.Close()
	}
}

// TestLocked: a writer blocked by another connection's write gives up when
// its ctx ends, and once the busy timeout (5 s) has passed it reports
// ErrUnavailable. Reads go on meanwhile (WAL).
func TestLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the busy timeout")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "busy.db")
	a, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Put(ctx, "k", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	release := holdWriteLock(t, path)
	defer release()

	if _, _, err := a.Get(ctx, "k"); err != nil {
		t.Fatalf("Get while another connection writes: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = a.Put(short, "k", []byte(`{"n":2}`), driver.Condition{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Put with a deadline while locked: %v after %v", err, time.Since(start))
	}
	_, err = a.Put(ctx, "k", []byte(`{"n":2}`), driver.Condition{})
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put past the busy timeout: %v", err)
	}
	t.Log(err)
	release()
	if _, err := a.Put(ctx, "k", []byte(`{"n":3}`), driver.Condition{}); err != nil {
		t.Fatalf("Put after the lock is gone: %v", err)
	}
}

// TestWaitAcrossProcesses: a waiter wakes on another process's commit.
func TestWaitAcrossProcesses(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "tokens.db")
	dirwatchtest.CrossProcess(t, url, 10)
}

func TestWaitClose(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "tokens.db")
	dirwatchtest.CloseWakes(t, func(t *testing.T) driver.Adapter { return open(t, url) })
}

// TestWaitOtherKeys: commits to other keys wake nobody waiting on a key.
func TestWaitOtherKeys(t *testing.T) {
	ctx := context.Background()
	url := "sqlite://" + filepath.Join(t.TempDir(), "tokens.db")
	a, b := open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()
	rev, err := a.Put(ctx, "k", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for wctx.Err() == nil {
			if _, err := b.Put(ctx, "other", []byte(`{"n":1}`), driver.Condition{}); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	err = a.(driver.Watcher).Wait(wctx, "k", rev)
	wg.Wait()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait while other keys change: %v, want DeadlineExceeded", err)
	}
}
