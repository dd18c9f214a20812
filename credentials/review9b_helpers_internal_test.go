package credentials

// Hostile review 9b: the fixes of review 9 (2d6fbb6): sidecar entry
// locks, settle before the lease, successor-only writes once an entry is
// gone. Helpers shared by the review9b tests.

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// countedPuts counts the Puts that reach the store.
type countedPuts struct {
	driver.Adapter
	n *atomic.Int64
}

func (a countedPuts) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	a.n.Add(1)
	return a.Adapter.Put(ctx, key, value, cond)
}

// review9bServer is a rotating token server and a record seeded with one
// of its refresh tokens, its access token expired.
func review9bServer(t *testing.T) (*oauthtest.Server, *storage.Record) {
	t.Helper()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("client", "secret")
	rec := &storage.Record{Profile: "p", ClientID: "client", ClientSecret: "secret", TokenURL: srv.TokenURL(),
		AccessToken: "at-expired", TokenType: "Bearer", Expiry: time.Now().Add(-time.Hour)}
	rec.Grant(srv.IssueRefreshToken("client"))
	return srv, rec
}

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
