package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
)

// TestNeverWorldReadable watches the directory while writes replace the
// file, with a umask that would leave new files world-readable: no file,
// temporary ones included, may ever be readable by group or others.
func TestNeverWorldReadable(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "pancloud")
	a := newAdapter(t, filepath.Join(dir, "credentials.json"), nil)
	defer a.Close()
	ctx := context.Background()
	if _, err := a.Put(ctx, "p", []byte(`{"n":0}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var seen atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 1)
	wg.Go(func() {
		for !stop.Load() {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				fi, err := e.Info()
				if err != nil {
					continue // replaced between ReadDir and Info
				}
				seen.Add(1)
				if fi.Mode().Perm()&0o077 != 0 {
					select {
					case errs <- fmt.Sprintf("%s has mode %v", e.Name(), fi.Mode()):
					default:
					}
				}
			}
		}
	})
	for i := range 200 {
		if _, err := a.Put(ctx, "p", fmt.Appendf(nil, `{"n":%d}`, i), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v", fi.Mode())
	}
	t.Logf("%d directory entries inspected", seen.Load())
}
