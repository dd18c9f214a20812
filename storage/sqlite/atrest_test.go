package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/sqlite"
)

// TestExistingFilesTightened: a database that another tool made readable
// by others (0644, with its -wal and -shm, as SQLite leaves them under a
// 022 umask) is made 0600, files and all, before anything is written to
// it, and the logger hears of it.
func TestExistingFilesTightened(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.db")
	// Another tool, still running: it keeps the -wal and -shm in place.
	other, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, "CREATE TABLE other (x)"); err != nil {
		t.Fatal(err)
	}
	files := []string{path, path + "-wal", path + "-shm"}
	for _, p := range files {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var logged bytes.Buffer
	a, err := sqlite.Open(ctx, path, &sqlite.Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Put(ctx, "p", []byte(`{"refresh_token":"x"}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want 0600", filepath.Base(p), fi.Mode(), err)
		}
	}
	if n := strings.Count(logged.String(), "level=WARN"); n != len(files) {
		t.Errorf("%d warnings, want %d:\n%s", n, len(files), &logged)
	}
}

// TestDeletedSecretScrubbed: once a record is deleted, its bytes are in
// none of the database's files, neither while the adapter is open (the
// WAL held the record's page before the delete) nor after Close.
// Without secure_delete the bytes stay in the page's free space; without
// the checkpoint, in the WAL.
func TestDeletedSecretScrubbed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.db")
	a, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const secret = "rt-8f3a9c2e7b1d4f60-SECRET"
	if _, err := a.Put(ctx, "keep", []byte(`{"refresh_token":"kept"}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	rev, err := a.Put(ctx, "gone", []byte(`{"refresh_token":"`+secret+`"}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	checkpoint(t, path)
	if !filesContain(t, path, secret) {
		t.Fatal("test is broken: the secret is in no file before the delete")
	}

	if err := a.Delete(ctx, "gone", driver.IfMatch(rev)); err != nil {
		t.Fatal(err)
	}
	if filesContain(t, path, secret) {
		t.Error("the deleted secret is still in the database files while open")
	}
	if _, _, err := a.Get(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if filesContain(t, path, secret) {
		t.Error("the deleted secret is still in the database files after Close")
	}
}

// checkpoint pushes what the WAL holds into the database file, as a
// checkpoint by any process at any time would.
func checkpoint(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("PRAGMA wal_checkpoint(FULL)"); err != nil {
		t.Fatal(err)
	}
}

func filesContain(t *testing.T, path, s string) bool {
	t.Helper()
	found := false
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			t.Logf("%s holds %q", filepath.Base(p), s)
			found = true
		}
	}
	return found
}
