package file_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/file"
)

// checkUnsafeLock asserts that a write refused the planted lock file with
// the typed error, naming it, and wrote nothing; reads still work.
func checkUnsafeLock(t *testing.T, path, why string) {
	t.Helper()
	ctx := context.Background()
	a := newAdapter(t, path, nil)
	defer a.Close()
	_, err := a.Put(ctx, "p", []byte(`{"refresh_token":"x"}`), driver.Condition{})
	if !errors.Is(err, driver.ErrReadOnly) || !errors.Is(err, file.ErrUnsafeFile) ||
		!strings.Contains(err.Error(), path+".lock") || !strings.Contains(err.Error(), why) {
		t.Fatalf("Put with a planted lock file: %v; want ErrReadOnly and ErrUnsafeFile naming the lock file and %q", err, why)
	}
	t.Log(err)
	if err := a.Delete(ctx, "p", driver.Condition{}); !errors.Is(err, file.ErrUnsafeFile) {
		t.Fatalf("Delete with a planted lock file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("credentials file written despite the refusal: %v", err)
	}
	if _, _, err := a.Get(ctx, "p"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
}

// TestLockSymlinkRefused: a symbolic link planted as the lock file
// (credentials.json.lock -> a victim) is not followed: the victim is
// neither created nor touched, and writes fail with a clear typed error.
func TestLockSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials.json")
	victims := t.TempDir()

	missing := filepath.Join(victims, "victim-missing")
	if err := os.Symlink(missing, path+".lock"); err != nil {
		t.Fatal(err)
	}
	checkUnsafeLock(t, path, "symbolic link")
	if _, err := os.Lstat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the link's target was created: %v", err)
	}

	existing := filepath.Join(victims, "victim")
	if err := os.WriteFile(existing, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(existing)
	os.Remove(path + ".lock")
	if err := os.Symlink(existing, path+".lock"); err != nil {
		t.Fatal(err)
	}
	checkUnsafeLock(t, path, "symbolic link")
	after, _ := os.Stat(existing)
	if b, _ := os.ReadFile(existing); string(b) != "precious" || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("victim changed: %q, %v", b, after.Mode())
	}
}

// TestLockNotRegularRefused: a FIFO or a directory in the lock file's
// place is refused, without hanging on the FIFO.
func TestLockNotRegularRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	if err := unix.Mkfifo(path+".lock", 0o600); err != nil {
		t.Fatal(err)
	}
	checkUnsafeLock(t, path, "not a regular file")
	os.Remove(path + ".lock")
	if err := os.Mkdir(path+".lock", 0o700); err != nil {
		t.Fatal(err)
	}
	checkUnsafeLock(t, path, "not a regular file")
}

// TestLockOfAnotherUserRefused: a lock file that belongs to another user
// (who could hold it to block our writes) is refused. Making one needs
// root, which CI has.
func TestLockOfAnotherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	path := filepath.Join(t.TempDir(), "credentials.json")
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path+".lock", 65534, 65534); err != nil {
		t.Fatal(err)
	}
	checkUnsafeLock(t, path, "belongs to user 65534")
}

// TestLockedTooLong: while another process holds the write lock past the
// lock timeout, a write fails with ErrUnavailable saying the store is
// locked and naming the lock file; a caller's shorter deadline ends the
// wait first, with the caller's context error, also naming the lock file.
func TestLockedTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := flockFile(lock); err != nil {
		t.Fatal(err)
	}

	a := newAdapter(t, path, &file.Options{LockTimeout: 300 * time.Millisecond})
	defer a.Close()
	put := func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := a.Put(ctx, "p", []byte(`{}`), driver.Condition{})
			done <- err
		}()
		select {
		case err := <-done:
			return time.Since(start), err
		case <-time.After(10 * time.Second):
			// Let the Put finish, so that Close does not wait for it.
			unflockFile(lock)
			<-done
			t.Fatal("Put still waiting for the lock after 10 s")
			return 0, nil
		}
	}

	took, err := put(context.Background())
	if !errors.Is(err, driver.ErrUnavailable) || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), path+".lock") {
		t.Fatalf("Put while the lock is held: %v", err)
	}
	if took < 300*time.Millisecond {
		t.Fatalf("gave up after %v, before the lock timeout", took)
	}
	t.Log(err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = put(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrUnavailable) || !strings.Contains(err.Error(), path+".lock") {
		t.Fatalf("Put with a short deadline while the lock is held: %v", err)
	}

	unflockFile(lock)
	if _, err := a.Put(context.Background(), "p", []byte(`{}`), driver.Condition{}); err != nil {
		t.Fatalf("Put once the lock is free: %v", err)
	}
}

// TestWidePermissionsTightened: a credentials file that another tool left
// readable by others is made 0600 by the first read, before any write;
// a directory others can write is left alone; each gets one warning.
func TestWidePermissionsTightened(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "credentials.json")
	copyFixture(t, path) // 0644, as pancloud leaves it under a 022 umask

	var logged bytes.Buffer
	a := newAdapter(t, path, &file.Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	defer a.Close()
	ctx := context.Background()
	names, err := a.List(ctx)
	if err != nil || len(names) == 0 {
		t.Fatalf("List: %v, %v", names, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode after a read: %v, want 0600", fi.Mode())
	}
	// Widened again, with new content: tightened again, no new warning.
	for i := range 3 {
		os.Chmod(path, 0o666)
		if _, err := a.Put(ctx, "extra", fmt.Appendf(nil, `{"n":%d}`, i), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, 0o644)
		b, _ := os.ReadFile(path)
		os.WriteFile(path, append(b, ' '), 0o644)
		if _, _, err := a.Get(ctx, "extra"); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Fatalf("file mode after a read: %v, want 0600", fi.Mode())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o777 {
		t.Fatalf("directory mode changed to %v", fi.Mode())
	}
	out := logged.String()
	if strings.Count(out, "level=WARN") != 2 || !strings.Contains(out, "credentials file was accessible by others") ||
		!strings.Contains(out, "others can write the credentials file's directory") {
		t.Fatalf("warnings:\n%s", out)
	}
	t.Log(out)

	// Without a logger: as private, and silent.
	os.Chmod(path, 0o644)
	b := newAdapter(t, path, nil)
	defer b.Close()
	if _, err := b.List(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode after a read without a logger: %v", fi.Mode())
	}
}

// TestHugeFileNotRead: a 300 MB file (sparse, so the test is cheap) is
// reported as ErrCorrupt without being read into memory, and a write
// does not touch it.
func TestHugeFileNotRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(300 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a := newAdapter(t, path, nil)
	defer a.Close()
	ctx := context.Background()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err = a.Get(ctx, "p")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, driver.ErrCorrupt) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("Get of a 300 MB file: %v", err)
	}
	t.Log(err)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("Get allocated %d bytes for a file it should not read", n)
	}
	if _, err := a.Put(ctx, "p", []byte(`{}`), driver.Condition{}); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("Put over a 300 MB file: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 300<<20 {
		t.Fatalf("file changed: %d bytes", fi.Size())
	}
}

// TestMaxSize: the bound is configurable; a file over it is ErrCorrupt,
// and a write that would grow the file past it is ErrInvalid and changes
// nothing.
func TestMaxSize(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "credentials.json")
	fixture := copyFixture(t, path)

	small := newAdapter(t, path, &file.Options{MaxSize: int64(len(fixture)) - 1})
	defer small.Close()
	if _, err := small.List(ctx); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("List of a file over the bound: %v", err)
	}

	a := newAdapter(t, path, &file.Options{MaxSize: int64(len(fixture)) + 100})
	defer a.Close()
	if _, err := a.List(ctx); err != nil {
		t.Fatalf("List of a file within the bound: %v", err)
	}
	big := `{"refresh_token":"` + strings.Repeat("x", 200) + `"}`
	if _, err := a.Put(ctx, "new", []byte(big), driver.IfAbsent()); !errors.Is(err, driver.ErrInvalid) {
		t.Fatalf("Put past the bound: %v", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, fixture) {
		t.Fatal("file changed by a refused Put")
	}
}
