package servers

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The build context must be byte-for-byte stable: its hash is the image tag,
// and an unstable one would rebuild the image on every run.
func TestContextArchiveReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := func() imageSpec {
		return imageSpec{name: "x", files: []imageFile{
			{path: "/lib/b.so", src: bin, mode: 0o755},
			{path: "/usr/bin/server", src: bin, mode: 0o755},
			{path: "/lib/b.so", src: bin, mode: 0o755},
		}, tail: []string{`ENTRYPOINT ["/usr/bin/server"]`}}
	}
	a, err := spec().contextArchive()
	if err != nil {
		t.Fatal(err)
	}
	// Touching the file changes its time, not the archive.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(bin, later, later); err != nil {
		t.Fatal(err)
	}
	b, err := spec().contextArchive()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("context archive differs between two builds of the same files")
	}
	if err := os.WriteFile(bin, []byte("binary v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := spec().contextArchive()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("context archive ignores the binary's content")
	}
}

func TestNativeFilesFindsLoader(t *testing.T) {
	files, err := nativeFiles("/bin/ls", "/ls")
	if err != nil {
		t.Fatal(err)
	}
	if files[0].path != "/ls" {
		t.Fatalf("first file %+v, want the binary at /ls", files[0])
	}
	var libc bool
	for _, f := range files[1:] {
		if filepath.Base(f.path) == "libc.so.6" {
			libc = true
		}
	}
	if !libc {
		t.Fatalf("libc not among %+v", files)
	}
}

// withFileLock must exclude holders in the same process too, since parallel
// tests of one package share it.
func TestFileLockExcludes(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var inside atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			err := withFileLock(context.Background(), "test", func() error {
				if n := inside.Add(1); n > 1 {
					t.Errorf("%d holders at once", n)
				}
				time.Sleep(20 * time.Millisecond)
				inside.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestFileLockHonoursContext(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	held := make(chan struct{})
	release := make(chan struct{})
	go withFileLock(context.Background(), "test", func() error {
		close(held)
		<-release
		return nil
	})
	<-held
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := withFileLock(ctx, "test", func() error { return nil })
	if err != context.DeadlineExceeded {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}
