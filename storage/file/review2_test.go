package file_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The lock file is opened O_NONBLOCK so that "a FIFO or device put there
// must not hang the open", but the credentials file itself is opened with a
// plain os.Open: whoever can create a file at the credentials path (a
// shared or group-writable directory, a path not created yet) plants a FIFO
// and every reader (the agent's readiness, Token, the CLI) blocks forever in
// open(2), ignoring its context.
func TestReview2FIFOAtCredentialsPathHangsReaders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials.json")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAdapter(t, path, nil)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := a.Get(ctx, "default")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Get on a FIFO succeeded")
		}
		t.Logf("Get on a FIFO: %v", err)
	case <-time.After(3 * time.Second):
		// Unblock the stuck open so the goroutine can finish.
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("Get with a 500ms context was still blocked after 3s: a FIFO at the credentials path hangs every reader")
	}
}
