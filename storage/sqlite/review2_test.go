package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/sqlite"
)

// Whoever can write the database's directory (the shared-directory case
// issue 17 hardened the file store's lock file against) plants
// "tokens.db-wal" as a symbolic link to a file they own. Open's tighten
// follows the link (os.Stat/os.Chmod), and SQLite opens the -wal through
// it: the refresh tokens written by Put land in the other user's file,
// which they can read whatever its mode. The file store refuses links
// (O_NOFOLLOW); the SQLite store follows them for the db, -wal, -shm and
// -journal.
func TestReview2SQLiteWALSymlinkChmodsLinkTarget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a file owned by another user") // the test machine runs as root
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.db")
	attacker := filepath.Join(t.TempDir(), "loot")
	if err := os.WriteFile(attacker, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(attacker, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(attacker, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Symlink(attacker, path+"-wal"); err != nil {
		t.Fatal(err)
	}
	a, err := sqlite.Open(ctx, path, nil)
	// SQLite itself refuses a -wal that is a link; but tighten has
	// already followed it and changed the mode of the file it names.
	if fi, serr := os.Stat(attacker); serr == nil && fi.Mode().Perm() != 0o666 {
		t.Errorf("Open changed the mode of the file a planted %s link names, to %v (a root agent chmods any file an attacker points at)", filepath.Base(path)+"-wal", fi.Mode().Perm())
	}
	if err != nil {
		t.Logf("Open refused the planted link: %v", err)
		return
	}
	const rt = "REFRESH-TOKEN-SECRET-review2-0123456789"
	if _, err := a.Put(ctx, "default", []byte(`{"refresh_token":"`+rt+`"}`), driver.IfAbsent()); err != nil {
		t.Logf("Put: %v", err)
	}
	loot, _ := os.ReadFile(attacker)
	a.Close()
	loot2, _ := os.ReadFile(attacker)
	fi, _ := os.Stat(attacker)
	if bytes.Contains(loot, []byte(rt)) || bytes.Contains(loot2, []byte(rt)) {
		t.Errorf("the refresh token was written into another user's file through a planted -wal link (file owner uid 65534, mode %v)", fi.Mode().Perm())
	}
}

// The database path itself: a planted "tokens.db -> somewhere" makes Open
// create "somewhere" (os.OpenFile with O_CREATE follows the link), the very
// finding issue 17 fixed for the file store's lock file.
func TestReview2SQLiteDBSymlinkCreatesTarget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.db")
	target := filepath.Join(t.TempDir(), "created-by-victim")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	a, err := sqlite.Open(ctx, path, nil)
	if err == nil {
		a.Close()
	}
	if _, serr := os.Lstat(target); serr == nil {
		t.Errorf("Open followed a planted link at the database path and created %s (Open error: %v)", target, err)
	}
}
