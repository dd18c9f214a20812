//go:build !unix

package credentials

import (
	"context"
	"errors"
	"io/fs"
	"os"
)

func ownedByUs(os.FileInfo) bool { return true }

// lockEntry without flock: processes are not serialized (the journal's
// file locks are Unix only), and only an entry's absence is seen.
func lockEntry(_ context.Context, path string) (unlock func(), found bool, err error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return func() {}, true, nil
}
