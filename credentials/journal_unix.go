//go:build unix

package credentials

import (
	"os"
	"syscall"
)

// ownedByUs reports whether fi belongs to this process's user: a journal
// entry or directory someone else made may be a planted record.
func ownedByUs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
