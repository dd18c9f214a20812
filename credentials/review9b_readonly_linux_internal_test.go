//go:build linux

package credentials

import (
	"os"
	"syscall"
	"testing"
)

// review9bReadOnlyDir returns an empty directory, 0700 and ours, and a
// function that makes it read-only from then on, as a filesystem
// remounted read-only after a disk error is: files in it stay readable,
// none can be made, renamed or removed. An unprivileged user gets that
// from chmod 0500; root, whom modes do not stop, from a tmpfs remounted
// read-only.
func review9bReadOnlyDir(t *testing.T) (dir string, readOnly func()) {
	t.Helper()
	dir = t.TempDir()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return dir, func() {
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatalf("root cannot mount a tmpfs to make a read-only directory: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir, func() {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, "mode=0700"); err != nil {
			t.Fatal(err)
		}
	}
}
