package memcached_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/memcached"
)

// uniquePrefix gives each test its own keys and index on a shared server.
func uniquePrefix(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "tctest-" + hex.EncodeToString(b) + ":"
}

func storeURL(t testing.TB) string {
	return "memcached://" + memcachedAddr(t) + "/?prefix=" + url.QueryEscape(uniquePrefix(t))
}

func openAdapter(t testing.TB, u string) driver.Adapter {
	t.Helper()
	a, err := driver.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestConformance gives every connection its own gomemcache client, as
// separate processes would have.
func TestConformance(t *testing.T) {
	u := storeURL(t)
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openAdapter(t, u) })
}

// TestConformanceSharedClient runs the suite with adapters over one client
// passed to New; closing them must leave the client usable.
func TestConformanceSharedClient(t *testing.T) {
	c := memcache.New(memcachedAddr(t))
	c.MaxIdleConns = 16
	defer c.Close()
	prefix := uniquePrefix(t)
	drivertest.Run(t, func(t *testing.T) driver.Adapter {
		a, err := memcached.New(c, &memcached.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
	if err := c.Ping(); err != nil {
		t.Fatalf("closing an adapter closed the caller's client: %v", err)
	}
}

func newAdapter(t *testing.T, opts memcached.Options) (*memcached.Adapter, *memcache.Client) {
	t.Helper()
	c := memcache.New(memcachedAddr(t))
	t.Cleanup(func() { c.Close() })
	if opts.Prefix == "" {
		opts.Prefix = uniquePrefix(t)
	}
	a, err := memcached.New(c, &opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, c
}

// TestEvictionIsReported simulates eviction by deleting a profile's item
// behind the adapter's back: List must drop it, say so in the log, and
// prune it from the index.
func TestEvictionIsReported(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	prefix := uniquePrefix(t)
	a, c := newAdapter(t, memcached.Options{Prefix: prefix, Logger: logger})
	ctx := context.Background()
	for _, n := range []string{"keep", "evicted"} {
		if _, err := a.Put(ctx, n, []byte(`{}`), driver.IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	// The item key is an implementation detail; find it by elimination.
	if err := evict(c, prefix, "evicted"); err != nil {
		t.Fatal(err)
	}
	names, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"keep"}) {
		t.Fatalf("List = %q, want [keep]", names)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "profile=evicted") {
		t.Fatalf("no eviction warning in the log: %q", out)
	}
	idx, err := c.Get(prefix + "!index")
	if err != nil {
		t.Fatal(err)
	}
	if string(idx.Value) != "keep" {
		t.Fatalf("index after pruning = %q", idx.Value)
	}
}

func evict(c *memcache.Client, prefix, name string) error {
	// base64url of the name, as the package documents.
	return c.Delete(prefix + b64(name))
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestTombstones: a conditionally deleted profile reads as missing, can be
// created again with IfAbsent, and its old revision stays dead.
func TestTombstones(t *testing.T) {
	a, _ := newAdapter(t, memcached.Options{})
	ctx := context.Background()
	r1, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "p", driver.IfMatch(r1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get(ctx, "p"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get of a tombstone: %v, want ErrNotFound", err)
	}
	if err := a.Delete(ctx, "p", driver.IfAbsent()); err != nil {
		t.Fatalf("Delete if absent over a tombstone: %v", err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(r1)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on the deleted revision: %v, want ErrConflict", err)
	}
	r2, err := a.Put(ctx, "p", []byte(`{"n":3}`), driver.IfAbsent())
	if err != nil {
		t.Fatalf("Put if absent over a tombstone: %v", err)
	}
	if r2 == r1 {
		t.Fatal("revision repeated after delete and create")
	}
	names, err := a.List(ctx)
	if err != nil || !slices.Equal(names, []string{"p"}) {
		t.Fatalf("List = %q, %v", names, err)
	}
}

// TestIndexUnderChurn creates and deletes profiles from several clients at
// once; afterwards the index must hold exactly the live profiles.
func TestIndexUnderChurn(t *testing.T) {
	prefix := uniquePrefix(t)
	ctx := context.Background()
	const workers, names, rounds = 8, 6, 30
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		a, _ := newAdapter(t, memcached.Options{Prefix: prefix})
		wg.Go(func() {
			for i := range rounds {
				n := fmt.Sprintf("p%d", (w+i)%names)
				var err error
				if (w+i)%3 == 0 {
					err = a.Delete(ctx, n, driver.Condition{})
				} else {
					_, err = a.Put(ctx, n, []byte(`{}`), driver.Condition{})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a, _ := newAdapter(t, memcached.Options{Prefix: prefix})
	listed, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for i := range names {
		n := fmt.Sprintf("p%d", i)
		if _, _, err := a.Get(ctx, n); err == nil {
			live = append(live, n)
		}
	}
	slices.Sort(listed)
	if !slices.Equal(listed, live) {
		t.Fatalf("List = %q, live profiles %q", listed, live)
	}
}

// TestLongName: a 200-byte name does not fit memcached's key as base64 and
// is hashed; it must still round-trip and list.
func TestLongName(t *testing.T) {
	a, _ := newAdapter(t, memcached.Options{})
	ctx := context.Background()
	name := strings.Repeat("ü", 100) // 200 bytes
	if _, err := a.Put(ctx, name, []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get(ctx, name); err != nil {
		t.Fatal(err)
	}
	names, err := a.List(ctx)
	if err != nil || !slices.Equal(names, []string{name}) {
		t.Fatalf("List = %q, %v", names, err)
	}
}

func TestForeignItemIsCorrupt(t *testing.T) {
	prefix := uniquePrefix(t)
	a, c := newAdapter(t, memcached.Options{Prefix: prefix})
	if err := c.Set(&memcache.Item{Key: prefix + b64("x"), Value: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get(context.Background(), "x"); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("Get of a foreign item: %v, want ErrCorrupt", err)
	}
}

func TestUnavailable(t *testing.T) {
	a := openAdapter(t, "memcached://127.0.0.1:1/?timeout=200ms")
	defer a.Close()
	ctx := context.Background()
	if _, _, err := a.Get(ctx, "p"); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Get: %v, want ErrUnavailable", err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{}`), driver.IfMatch("r")); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	if _, err := a.List(ctx); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("List: %v, want ErrUnavailable", err)
	}
}
