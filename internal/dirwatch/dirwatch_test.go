package dirwatch

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func start(t *testing.T, w *Watch) <-chan struct{} {
	t.Helper()
	ch, err := w.Changed()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("cannot watch here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func woken(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

func quiet(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	case <-time.After(50 * time.Millisecond):
		return true
	}
}

func TestChanges(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "watched")
	w := New(dir, "watched")
	defer w.Close()

	changes := map[string]func() error{
		"create": func() error { return os.WriteFile(name, []byte("1"), 0o600) },
		"write in place": func() error {
			f, err := os.OpenFile(name, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("2"), 0)
			return err
		},
		"rename over": func() error {
			tmp := filepath.Join(dir, ".tmp")
			if err := os.WriteFile(tmp, []byte("3"), 0o600); err != nil {
				return err
			}
			return os.Rename(tmp, name)
		},
		"remove": func() error { return os.Remove(name) },
	}
	for _, step := range []string{"create", "write in place", "rename over", "remove"} {
		ch := start(t, w)
		if err := changes[step](); err != nil {
			t.Fatal(err)
		}
		if !woken(ch) {
			t.Fatalf("%s: no wake-up", step)
		}
		// The reader may still be handing out the events of this step;
		// let them pass before the next step subscribes.
		for !quiet(start(t, w)) {
		}
	}

	ch := start(t, w)
	if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !quiet(ch) {
		t.Fatal("woken by a file that is not watched")
	}
}

func TestMissingDirectory(t *testing.T) {
	w := New(filepath.Join(t.TempDir(), "missing"), "f")
	defer w.Close()
	if _, err := w.Changed(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Changed on a missing directory: %v, want ErrUnsupported", err)
	}
}

// TestDirectoryReplaced: when the directory goes, waiters wake and the
// next Changed watches whatever the path names now.
func TestDirectoryReplaced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w := New(dir, "f")
	defer w.Close()
	ch := start(t, w)
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if !woken(ch) {
		t.Fatal("no wake-up when the directory moved")
	}
	// Only the end of the old watch woke us (nothing was written to f),
	// so it is gone and the next Changed watches the new directory.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ch = start(t, w)
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !woken(ch) {
		t.Fatal("no wake-up in the new directory")
	}
}

func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	w := New(t.TempDir(), "f")
	ch := start(t, w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !woken(ch) {
		t.Fatal("Close did not wake the waiter")
	}
	ch, err := w.Changed()
	if err != nil || !woken(ch) {
		t.Fatalf("Changed after Close: %v; want a closed channel", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Close waits for the reader to be done, but the goroutine may take a
	// moment more to exit.
	now := runtime.NumGoroutine()
	for deadline := time.Now().Add(time.Second); now > before && time.Now().Before(deadline); now = runtime.NumGoroutine() {
		time.Sleep(time.Millisecond)
	}
	if now > before {
		t.Fatalf("%d goroutines before, %d after Close", before, now)
	}
}
