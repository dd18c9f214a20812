//go:build unix

package credentials

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/tokencache/tokencache/internal/backoff"
)

// ownedByUs reports whether fi belongs to this process's user: a journal
// entry or directory someone else made may be a planted record.
func ownedByUs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// lockEntry takes the lock of the entry at path, waiting up to ctx while
// another process (or another Credentials of this one) holds it. found is
// false when the entry is gone.
//
// The lock is an flock on a file beside the entry (path + ".lock"), not
// on the entry, which is rewritten by rename: a lock on a renamed-over
// file would guard nothing. Whoever removes the entry removes the lock
// file too, under the lock; a waiter that then gets a lock on the removed
// file, or one made after the entry went, finds out and lets go. The
// kernel drops an flock when its holder dies, so a SIGKILLed writer never
// blocks the replay of its entries.
func lockEntry(ctx context.Context, path string) (unlock func(), found bool, err error) {
	lockPath := path + ".lock"
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if _, err := os.Lstat(path); err != nil {
			return nil, false, ignoreNotExist(err)
		}
		f, err := os.OpenFile(lockPath, os.O_RDONLY|os.O_CREATE, 0o600)
		if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
			// A read-only journal (a file system remounted read-only):
			// no process can remove or rewrite the entry either, so
			// there is nothing to serialize; its record may still be
			// written to the store.
			return func() {}, true, nil
		}
		if err != nil {
			return nil, false, err
		}
		if err := flockWait(ctx, f); err != nil {
			f.Close()
			return nil, false, err
		}
		held, herr := f.Stat()
		now, serr := os.Lstat(lockPath)
		if herr != nil || serr != nil || !os.SameFile(held, now) {
			// Removed (and perhaps made again) while we waited.
			f.Close()
			if herr != nil || !errors.Is(serr, fs.ErrNotExist) && serr != nil {
				return nil, false, errors.Join(herr, serr)
			}
			continue
		}
		if _, err := os.Lstat(path); err != nil {
			// The entry went while we waited, its lock file with it, or
			// we made the lock file after it went.
			os.Remove(lockPath)
			f.Close()
			return nil, false, ignoreNotExist(err)
		}
		return func() { f.Close() }, true, nil
	}
}

// flockWait polls for an exclusive flock on f until ctx ends: one held
// for a store write at most, so polling costs little, and ctx bounds it.
func flockWait(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		if err := backoff.Sleep(ctx, 2*time.Millisecond+backoff.Jitter(8*time.Millisecond)); err != nil {
			return err
		}
	}
}

// ignoreNotExist: a missing entry is not an error, only gone.
func ignoreNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
