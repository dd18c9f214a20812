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

// lockEntry takes an exclusive flock on the entry at path, waiting while
// another process (or another Credentials of this one) holds it, up to
// ctx. found is false when the entry is gone: another holder wrote it to
// the store and removed it. An entry rewritten while we waited (renamed
// over by maybeApplied) is locked afresh: a lock on the old file guards
// nothing. The kernel drops the lock when its holder dies, so a SIGKILLed
// writer never blocks the replay of its entries.
func lockEntry(ctx context.Context, path string) (unlock func(), found bool, err error) {
	for {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
				break
			}
			// Held for one store write at most: poll rather than block,
			// so that ctx bounds the wait.
			if serr := backoff.Sleep(ctx, 2*time.Millisecond+backoff.Jitter(8*time.Millisecond)); serr != nil {
				f.Close()
				return nil, false, serr
			}
		}
		if err != nil {
			f.Close()
			return nil, false, err
		}
		held, herr := f.Stat()
		now, serr := os.Stat(path)
		if herr == nil && serr == nil && os.SameFile(held, now) {
			return func() { f.Close() }, true, nil
		}
		f.Close()
		if errors.Is(serr, fs.ErrNotExist) {
			return nil, false, nil
		}
		if herr != nil || serr != nil {
			return nil, false, errors.Join(herr, serr)
		}
	}
}
