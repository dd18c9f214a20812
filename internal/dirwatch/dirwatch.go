// Package dirwatch tells waiters in one process that files written by
// another process may have changed, for tokencache's storage adapters on
// local files (storage/file and storage/sqlite). It is an implementation
// detail of those adapters, not a general-purpose file watcher: it only
// says "something may have changed", and callers re-read to find out what.
//
// It watches the directory rather than the files because writers replace
// files by rename: a watch on the file itself would stay on the old inode
// and never see the next version.
//
// On Linux it uses inotify; elsewhere Changed reports errors.ErrUnsupported
// and callers poll.
package dirwatch

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Watch reports changes to a few names in one directory. The kernel watch
// and the goroutine that reads it start on the first Changed, so adapters
// that never wait cost nothing; Close stops them.
type Watch struct {
	dir   string
	names map[string]bool

	mu      sync.Mutex
	closed  bool
	changed chan struct{} // closed and replaced on every change: a broadcast
	f       *os.File      // the live kernel watch, nil when there is none
	readers sync.WaitGroup
}

// New returns a Watch for the named files (base names) in dir. Nothing
// happens until Changed is called.
func New(dir string, names ...string) *Watch {
	w := &Watch{dir: dir, names: map[string]bool{}, changed: make(chan struct{})}
	for _, n := range names {
		w.names[n] = true
	}
	return w
}

// Changed returns a channel that is closed by the first change to one of
// the names after the call (or by one shortly before it: wake-ups may be
// spurious), or by Close. Callers must take the channel before they read
// the files, so that a change between their read and their wait cannot be
// missed.
//
// The error wraps errors.ErrUnsupported when the directory cannot be
// watched: the platform has no inotify, the per-user limits on inotify
// instances or watches are used up, or the directory does not exist yet.
// The next call tries again.
func (w *Watch) Changed() (<-chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.f != nil {
		return w.changed, nil
	}
	f, err := watchDir(w.dir)
	if err != nil {
		return nil, fmt.Errorf("%w: watching %s: %w", errors.ErrUnsupported, w.dir, err)
	}
	w.f = f
	w.readers.Add(1)
	go func() {
		defer w.readers.Done()
		readEvents(f, w.names, w.broadcast)
		w.stopped(f)
	}()
	return w.changed, nil
}

// broadcast wakes everyone waiting on the current channel.
func (w *Watch) broadcast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// stopped is called when the reader of f has given up: f was closed, or
// the watched directory went away or was moved, which the kernel reports
// as the end of the watch. Whatever happened to the directory may have
// happened to the files in it, so waiters are woken; the next Changed sets
// up a new watch on whatever the path names now.
func (w *Watch) stopped(f *os.File) {
	w.mu.Lock()
	if w.f == f {
		w.f = nil
		if !w.closed {
			close(w.changed)
			w.changed = make(chan struct{})
		}
	}
	w.mu.Unlock()
	f.Close()
}

// Close stops the watch and wakes every waiter, now and later: after Close
// Changed returns a closed channel. It returns once the reading goroutine
// has exited.
func (w *Watch) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.changed)
	f := w.f
	w.f = nil
	w.mu.Unlock()
	var err error
	if f != nil {
		// Closing the descriptor unblocks the reader's Read.
		err = f.Close()
	}
	w.readers.Wait()
	return err
}
