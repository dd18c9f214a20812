package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/redis"
)

// uniquePrefix isolates a test's keys on a shared server, so that List
// sees only them and leftovers of earlier runs do not interfere.
func uniquePrefix(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "tctest-" + hex.EncodeToString(b) + ":"
}

func withQuery(t testing.TB, rawURL string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestConformance opens every connection from the URL, so each adapter has
// its own go-redis client and connection pool, as separate processes would.
func TestConformance(t *testing.T) { runConformance(t, redisURL(t), nil) }

// runConformance runs the suite on adapters opened from rawURL under a
// prefix of their own, passing each to check, if given, first.
func runConformance(t *testing.T, rawURL string, check func(t *testing.T, a driver.Adapter)) {
	u := withQuery(t, rawURL, "prefix", uniquePrefix(t))
	drivertest.Run(t, func(t *testing.T) driver.Adapter {
		a, err := driver.Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		if check != nil {
			check(t, a)
		}
		return a
	})
}

// TestConformanceSharedClient runs the suite with adapters that share one
// client passed to New, the way an application hands in its own client.
func TestConformanceSharedClient(t *testing.T) {
	c := plainClient(t)
	prefix := uniquePrefix(t)
	drivertest.Run(t, func(t *testing.T) driver.Adapter {
		return must(redis.New(c, &redis.Options{Prefix: prefix}))
	})
	// The suite closed adapters; the caller's client must still work.
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("closing an adapter closed the caller's client: %v", err)
	}
}

// TestConformanceCluster runs the suite on a three-master Redis Cluster,
// where keys spread over slots, List scans every master and notifications
// travel on shard channels.
func TestConformanceCluster(t *testing.T) {
	runConformance(t, redisClusterURL(t), func(t *testing.T, a driver.Adapter) {
		if _, ok := a.(*redis.Adapter).Client().(*goredis.ClusterClient); !ok {
			t.Fatalf("cluster URL made a %T", a.(*redis.Adapter).Client())
		}
	})
}

// TestConformanceSentinel runs the suite through Sentinel: each adapter's
// failover client asks a Sentinel for the master and runs scripts and
// notifications there. Had the URL made a plain client to the Sentinel's
// port instead, the suite would fail at once: a Sentinel serves no keys.
func TestConformanceSentinel(t *testing.T) { runConformance(t, redisSentinelURL(t), nil) }

// TestClusterSlots checks that names with hash-tag braces do not pin
// profiles together: unescaped, the four "{t}..." names would all hash to
// the slot of "t". Each must land where its whole key sends it and list
// back by name.
func TestClusterSlots(t *testing.T) {
	ctx := context.Background()
	opt, err := goredis.ParseClusterURL(redisClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClusterClient(opt)
	defer c.Close()
	prefix := uniquePrefix(t)
	a := must(redis.New(c, &redis.Options{Prefix: prefix}))
	names := []string{"{t}a", "{t}b", "{t}c", "{t}d", "x{t}", "%7B", "{}", "}{"}
	for _, n := range names {
		if _, err := a.Put(ctx, n, []byte(`{}`), driver.IfAbsent()); err != nil {
			t.Fatalf("Put(%q): %v", n, err)
		}
	}
	listed, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(listed)
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(listed, want) {
		t.Fatalf("List = %q, want %q", listed, want)
	}
	tagSlot, err := c.ClusterKeySlot(ctx, "t").Result()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inTagSlot := 0
	err = c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
		keys, err := n.Keys(ctx, prefix+"*").Result()
		for _, k := range keys {
			if !strings.Contains(k, "%7Bt%7D") {
				continue
			}
			s, err := n.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			if s == tagSlot {
				inTagSlot++
			}
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inTagSlot > 1 {
		t.Fatalf("%d of the {t} profiles share the hash tag's slot %d", inTagSlot, tagSlot)
	}
}

// TestClusterHostListURL opens the cluster through the comma-separated
// host form and round-trips a profile.
func TestClusterHostListURL(t *testing.T) {
	opt, err := goredis.ParseClusterURL(redisClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u := "redis://" + strings.Join(opt.Addrs, ",") + "/?cluster=true&prefix=" + url.QueryEscape(uniquePrefix(t))
	a, err := driver.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := a.Get(ctx, "p"); err != nil || got != rev {
		t.Fatalf("Get = %q, %v; want %q", got, err, rev)
	}
}

func TestUnavailable(t *testing.T) {
	a, err := driver.Open(context.Background(), "redis://127.0.0.1:1/0?dial_timeout=200ms&max_retries=-1")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	_, err = a.Put(ctx, "p", []byte(`{}`), driver.IfAbsent())
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	if _, err := a.List(ctx); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("List: %v, want ErrUnavailable", err)
	}
	// A deadline the caller set stays the caller's error.
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	if _, _, err := a.Get(short, "p"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get after the deadline: %v, want DeadlineExceeded", err)
	}
}

// TestWaitWakesOnDeleteAndClose covers the Watcher paths the suite does
// not: a delete is a change, and Close ends a Wait in progress.
func TestWaitWakesOnDeleteAndClose(t *testing.T) {
	u := withQuery(t, redisURL(t), "prefix", uniquePrefix(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := driver.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := driver.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.(driver.Watcher).Wait(ctx, "p", rev) }()
	time.Sleep(50 * time.Millisecond)
	if err := b.Delete(ctx, "p", driver.IfMatch(rev)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait across a delete: %v", err)
	}
	// Missing key, revision "": waits until Close.
	go func() { done <- a.(driver.Watcher).Wait(ctx, "p", "") }()
	time.Sleep(50 * time.Millisecond)
	a.Close()
	if err := <-done; !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("Wait after Close: %v, want ErrClosed", err)
	}
}

// TestNoABA: a profile deleted and created again never repeats a revision,
// so a writer holding the old one loses.
func TestNoABA(t *testing.T) {
	u := withQuery(t, redisURL(t), "prefix", uniquePrefix(t))
	ctx := context.Background()
	a, err := driver.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	old, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "p", driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(old)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a revision from before the delete: %v, want ErrConflict", err)
	}
}

func TestCorruptKey(t *testing.T) {
	c := plainClient(t)
	prefix := uniquePrefix(t)
	ctx := context.Background()
	if err := c.Set(ctx, prefix+"str", "not a hash", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	a := must(redis.New(c, &redis.Options{Prefix: prefix}))
	if _, _, err := a.Get(ctx, "str"); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("Get of a non-hash key: %v, want ErrCorrupt", err)
	}
	if _, err := a.Put(ctx, "str", []byte(`{}`), driver.Condition{}); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("Put over a non-hash key: %v, want ErrCorrupt", err)
	}
	if v, _ := c.Get(ctx, prefix+"str").Result(); v != "not a hash" {
		t.Fatalf("foreign key overwritten: %q", v)
	}
}

// oldClusterAdapter returns adapters over a Redis that lacks SPUBLISH, as
// Redis Cluster before 7.0 does, reached through a ClusterClient (whose
// adapters notify on shard channels). The server is a single Redis 7 with
// SPUBLISH renamed away, presented to go-redis as a one-node cluster that
// serves every slot.
func oldClusterAdapter(t *testing.T) func() *redis.Adapter {
	t.Helper()
	servers.SkipShort(t)
	ctx := context.Background()
	srv, err := servers.StartRedisArgs(ctx, "--rename-command", "SPUBLISH", "")
	if err != nil {
		t.Fatalf("redis without SPUBLISH: %v", err)
	}
	t.Cleanup(func() { srv.Terminate(context.Background()) })
	prefix := uniquePrefix(t)
	return func() *redis.Adapter {
		c := goredis.NewClusterClient(&goredis.ClusterOptions{
			ClusterSlots: func(context.Context) ([]goredis.ClusterSlot, error) {
				return []goredis.ClusterSlot{{Start: 0, End: 16383, Nodes: []goredis.ClusterNode{{Addr: srv.Addr}}}}, nil
			},
		})
		t.Cleanup(func() { c.Close() })
		a := must(redis.New(c, &redis.Options{Prefix: prefix}))
		t.Cleanup(func() { a.Close() })
		return a
	}
}

// TestNoShardedPubSub: on a server without SPUBLISH a write still lands
// and is reported as done (its notification is what failed, and an error
// would make the caller retry a write that happened), and waiters still
// wake, through plain PUBLISH.
func TestNoShardedPubSub(t *testing.T) {
	newAdapter := oldClusterAdapter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, waiter := newAdapter(), newAdapter()
	if err := a.Client().Do(ctx, "SPUBLISH", "x", "y").Err(); err == nil {
		t.Fatal("the test server knows SPUBLISH")
	}

	r1, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatalf("Put if absent: %v", err)
	}
	if v, r, err := a.Get(ctx, "p"); err != nil || r != r1 || string(v) != `{"n":1}` {
		t.Fatalf("Get = %s, %q, %v; want the value written at %q", v, r, err, r1)
	}
	// A waiter that has never written must not depend on SSUBSCRIBE either.
	woke := make(chan error, 1)
	go func() { woke <- waiter.Wait(ctx, "p", r1) }()
	time.Sleep(100 * time.Millisecond)
	r2, err := a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(r1))
	if err != nil {
		t.Fatalf("Put if match: %v", err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not wake on a write")
	}
	if err := a.Delete(ctx, "p", driver.IfMatch(r2)); err != nil {
		t.Fatalf("Delete if match: %v", err)
	}
	if _, _, err := a.Get(ctx, "p"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	// A fresh adapter, which has not learnt anything yet, writes too.
	if _, err := newAdapter().Put(ctx, "q", []byte(`{}`), driver.Condition{}); err != nil {
		t.Fatalf("Put from a fresh adapter: %v", err)
	}
}
