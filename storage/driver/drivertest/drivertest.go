// Package drivertest is the conformance suite every storage adapter runs
// unchanged, in the style of gocloud.dev's drivertest: an adapter's test
// file hands it a way to open connections and the suite checks the whole
// driver.Adapter contract, including exactly-one-winner conditional puts
// under concurrency and, for stores shared through the file system, across
// processes.
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, func(t *testing.T) driver.Adapter { return open(t) })
//	}
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// Opener returns a new connection to the backing store under test. Every
// call within one top-level test must reach the same data, as separate
// clients of one server would; the suite closes what it opens.
type Opener func(t *testing.T) driver.Adapter

// Run runs the conformance suite. Keys carry a random prefix, so the suite
// can run against a server that holds other data.
func Run(t *testing.T, open Opener) {
	prefix := randomPrefix()
	conn := func(t *testing.T) driver.Adapter {
		a := open(t)
		t.Cleanup(func() { a.Close() })
		return a
	}
	cases := []struct {
		name string
		fn   func(t *testing.T, a driver.Adapter, key string)
	}{
		{"GetMissing", testGetMissing},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfMatch", testPutIfMatch},
		{"PutUnconditional", testPutUnconditional},
		{"Delete", testDelete},
		{"LargeValue", testLargeValue},
		{"UnusualKey", testUnusualKey},
		{"ContextCancelled", testContextCancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, conn(t), prefix+c.name) })
	}
	t.Run("List", func(t *testing.T) { testList(t, conn(t), prefix+"List") })
	t.Run("ConcurrentIncrements", func(t *testing.T) {
		conns := []driver.Adapter{conn(t), conn(t), conn(t), conn(t)}
		testConcurrentIncrements(t, conns, prefix+"Counter")
	})
	t.Run("SecondConnectionSees", func(t *testing.T) {
		a, b := conn(t), conn(t)
		key := prefix + "Shared"
		rev := mustPut(t, a, key, obj(key, 1), driver.IfAbsent())
		got, gotRev, err := b.Get(context.Background(), key)
		if err != nil || gotRev != rev {
			t.Fatalf("second connection Get = rev %q, %v; want rev %q", gotRev, err, rev)
		}
		assertValue(t, got, obj(key, 1))
	})
	t.Run("Watch", func(t *testing.T) {
		a := conn(t)
		w, ok := a.(driver.Watcher)
		if ok && errors.Is(w.Wait(context.Background(), prefix+"Watch", "stale"), errors.ErrUnsupported) {
			ok = false
		}
		if !ok {
			t.Logf("%T cannot watch; Store polls instead", a)
			return
		}
		testWatch(t, a, conn(t), prefix+"Watch")
	})
	t.Run("KeyWatch", func(t *testing.T) {
		a := conn(t)
		kw, ok := a.(driver.KeyWatcher)
		if ok {
			// A store that holds something: a file store's directory then exists.
			mustPut(t, a, prefix+"KeyWatchProbe", obj(prefix+"KeyWatchProbe", 1), driver.Condition{})
			sub, err := kw.WatchKeys(context.Background(), func(string) {})
			if errors.Is(err, errors.ErrUnsupported) {
				ok = false
			} else if err != nil {
				t.Fatalf("WatchKeys: %v", err)
			} else {
				sub.Close()
			}
		}
		if !ok {
			t.Logf("%T cannot watch many keys at once; each Store.Wait watches on its own", a)
			return
		}
		testKeyWatch(t, a, conn(t), prefix+"KeyWatch")
	})
	t.Run("CloseThenUse", func(t *testing.T) { testClose(t, open(t), prefix+"Closed") })
}

// Value builds the JSON object the suite stores: a counter n and the key,
// as the "profile" member that record-shaped stores keep.
func obj(key string, n int) []byte {
	return fmt.Appendf(nil, `{"profile":%q,"n":%d}`, key, n)
}

func counter(t testing.TB, b []byte) int {
	t.Helper()
	var v struct{ N int }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("stored value is not the JSON written: %v: %.100s", err, b)
	}
	return v.N
}

// assertValue compares JSON objects, allowing the normalisation the
// Adapter contract allows (whitespace; a "profile" member).
func assertValue(t testing.TB, got, want []byte) {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("Get returned non-JSON %.100q: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("bad want: %v", err)
	}
	delete(g, "profile")
	delete(w, "profile")
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("Get returned %.200s, want %.200s", got, want)
	}
}

func mustPut(t testing.TB, a driver.Adapter, key string, v []byte, cond driver.Condition) driver.Revision {
	t.Helper()
	rev, err := a.Put(context.Background(), key, v, cond)
	if err != nil {
		t.Fatalf("Put(%q, %v): %v", key, cond, err)
	}
	if rev == "" {
		t.Fatalf("Put(%q) returned an empty revision", key)
	}
	return rev
}

func mustGet(t testing.TB, a driver.Adapter, key string) ([]byte, driver.Revision) {
	t.Helper()
	v, rev, err := a.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, rev
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testGetMissing(t *testing.T, a driver.Adapter, key string) {
	_, _, err := a.Get(context.Background(), key)
	wantErr(t, "Get of a missing key", err, driver.ErrNotFound)
}

func testPutIfAbsent(t *testing.T, a driver.Adapter, key string) {
	rev := mustPut(t, a, key, obj(key, 1), driver.IfAbsent())
	v, got := mustGet(t, a, key)
	assertValue(t, v, obj(key, 1))
	if got != rev {
		t.Fatalf("Get revision %q, Put returned %q", got, rev)
	}
	_, err := a.Put(context.Background(), key, obj(key, 2), driver.IfAbsent())
	wantErr(t, "second Put if absent", err, driver.ErrConflict)
	v, got = mustGet(t, a, key)
	assertValue(t, v, obj(key, 1))
	if got != rev {
		t.Fatalf("a losing Put changed the revision from %q to %q", rev, got)
	}
}

func testPutIfMatch(t *testing.T, a driver.Adapter, key string) {
	ctx := context.Background()
	_, err := a.Put(ctx, key, obj(key, 1), driver.IfMatch("no-such-revision"))
	wantErr(t, "Put if match on a missing key", err, driver.ErrConflict)

	r1 := mustPut(t, a, key, obj(key, 1), driver.IfAbsent())
	r2 := mustPut(t, a, key, obj(key, 2), driver.IfMatch(r1))
	if r2 == r1 {
		t.Fatalf("revision did not change on update: %q", r2)
	}
	// The stale revision must lose and leave the value alone.
	_, err = a.Put(ctx, key, obj(key, 99), driver.IfMatch(r1))
	wantErr(t, "Put with a stale revision", err, driver.ErrConflict)
	v, cur := mustGet(t, a, key)
	assertValue(t, v, obj(key, 2))
	if cur != r2 {
		t.Fatalf("revision %q after losing Put, want %q", cur, r2)
	}
	r3 := mustPut(t, a, key, obj(key, 3), driver.IfMatch(r2))
	for _, old := range []driver.Revision{r1, r2} {
		if r3 == old {
			t.Fatalf("revision %q reused", r3)
		}
	}
}

func testPutUnconditional(t *testing.T, a driver.Adapter, key string) {
	mustPut(t, a, key, obj(key, 1), driver.Condition{})
	r := mustPut(t, a, key, obj(key, 2), driver.Condition{})
	v, cur := mustGet(t, a, key)
	assertValue(t, v, obj(key, 2))
	if cur != r {
		t.Fatalf("revision %q, Put returned %q", cur, r)
	}
}

func testDelete(t *testing.T, a driver.Adapter, key string) {
	ctx := context.Background()
	if err := a.Delete(ctx, key, driver.Condition{}); err != nil {
		t.Fatalf("unconditional Delete of a missing key: %v", err)
	}
	wantErr(t, "Delete if match on a missing key", a.Delete(ctx, key, driver.IfMatch("x")), driver.ErrConflict)
	r1 := mustPut(t, a, key, obj(key, 1), driver.IfAbsent())
	r2 := mustPut(t, a, key, obj(key, 2), driver.IfMatch(r1))
	wantErr(t, "Delete with a stale revision", a.Delete(ctx, key, driver.IfMatch(r1)), driver.ErrConflict)
	wantErr(t, "Delete if absent of a present key", a.Delete(ctx, key, driver.IfAbsent()), driver.ErrConflict)
	mustGet(t, a, key)
	if err := a.Delete(ctx, key, driver.IfMatch(r2)); err != nil {
		t.Fatalf("Delete with the current revision: %v", err)
	}
	_, _, err := a.Get(ctx, key)
	wantErr(t, "Get after Delete", err, driver.ErrNotFound)
	// A deleted key can be created again.
	mustPut(t, a, key, obj(key, 3), driver.IfAbsent())
}

func testLargeValue(t *testing.T, a driver.Adapter, key string) {
	pad := strings.Repeat("0123456789abcdef", (1<<20)/16-8)
	v := fmt.Appendf(nil, `{"profile":%q,"n":7,"pad":%q}`, key, pad)
	if len(v) > 1<<20 {
		t.Fatalf("test value is %d bytes", len(v))
	}
	rev := mustPut(t, a, key, v, driver.IfAbsent())
	got, _ := mustGet(t, a, key)
	assertValue(t, got, v)
	mustPut(t, a, key, obj(key, 8), driver.IfMatch(rev))
}

func testUnusualKey(t *testing.T, a driver.Adapter, key string) {
	key += `/tenant a:b*?"ü{}%`
	mustPut(t, a, key, obj(key, 1), driver.IfAbsent())
	keys, err := a.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(keys, key) {
		t.Fatalf("List lost the key %q", key)
	}
	v, _ := mustGet(t, a, key)
	assertValue(t, v, obj(key, 1))
}

func testContextCancelled(t *testing.T, a driver.Adapter, key string) {
	mustPut(t, a, key, obj(key, 1), driver.IfAbsent())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := a.Get(ctx, key)
	wantErr(t, "Get with a cancelled context", err, context.Canceled)
	_, err = a.Put(ctx, key, obj(key, 2), driver.Condition{})
	wantErr(t, "Put with a cancelled context", err, context.Canceled)
	v, _ := mustGet(t, a, key)
	assertValue(t, v, obj(key, 1))
}

func testList(t *testing.T, a driver.Adapter, prefix string) {
	want := []string{prefix + "-a", prefix + "-b", prefix + "-c"}
	for _, k := range want {
		mustPut(t, a, k, obj(k, 1), driver.IfAbsent())
	}
	if err := a.Delete(context.Background(), prefix+"-b", driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	keys, err := a.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix+"-") {
			got = append(got, k)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{prefix + "-a", prefix + "-c"}) {
		t.Fatalf("List = %q, want the -a and -c keys", got)
	}
}

// testConcurrentIncrements has 32 goroutines race read-modify-write cycles
// on one key. If two Puts on the same revision could both win, an increment
// would be lost and the counter would fall short of the successful Puts.
func testConcurrentIncrements(t *testing.T, conns []driver.Adapter, key string) {
	const goroutines, attempts = 32, 25
	ctx := context.Background()
	mustPut(t, conns[0], key, obj(key, 0), driver.IfAbsent())
	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			a := conns[g%len(conns)]
			for range attempts {
				v, rev, err := a.Get(ctx, key)
				if err != nil {
					errs <- err
					return
				}
				var n struct{ N int }
				if err := json.Unmarshal(v, &n); err != nil {
					errs <- err
					return
				}
				_, err = a.Put(ctx, key, obj(key, n.N+1), driver.IfMatch(rev))
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, driver.ErrConflict):
					conflicts.Add(1)
				default:
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
	v, _ := mustGet(t, conns[0], key)
	if got := counter(t, v); int64(got) != wins.Load() || got == 0 {
		t.Fatalf("counter = %d after %d successful puts (%d conflicts)", got, wins.Load(), conflicts.Load())
	}
	t.Logf("%d wins, %d conflicts", wins.Load(), conflicts.Load())
}

func testWatch(t *testing.T, a, b driver.Adapter, key string) {
	w := a.(driver.Watcher)
	rev := mustPut(t, a, key, obj(key, 1), driver.IfAbsent())
	// A stale revision returns at once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Wait(ctx, key, "stale"); err != nil {
		t.Fatalf("Wait on a stale revision: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Wait(ctx, key, rev) }()
	time.Sleep(50 * time.Millisecond)
	mustPut(t, b, key, obj(key, 2), driver.IfMatch(rev))
	if err := <-done; err != nil {
		t.Fatalf("Wait did not wake on a change from another connection: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, cur := mustGet(t, a, key)
	wantErr(t, "Wait without a change", w.Wait(short, key, cur), context.DeadlineExceeded)
}

// subscriptionCounter counts the subscriptions a Store opens on its adapter.
type subscriptionCounter struct {
	driver.Adapter
	subs atomic.Int32
}

func (c *subscriptionCounter) WatchKeys(ctx context.Context, changed func(string)) (driver.KeySubscription, error) {
	c.subs.Add(1)
	return c.Adapter.(driver.KeyWatcher).WatchKeys(ctx, changed)
}

// Close leaves the adapter to the suite, which closes it.
func (c *subscriptionCounter) Close() error { return nil }

// testKeyWatch has many waiters on many keys share one Store, as the
// profiles of a multi-tenant process do: they must share one subscription,
// a write to one key must wake every waiter of that key, and the waiters
// of the other keys must sleep on.
func testKeyWatch(t *testing.T, a, b driver.Adapter, prefix string) {
	const keys, perKey = 8, 4
	counter := &subscriptionCounter{Adapter: a}
	st := storage.NewStore(counter)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := make([]string, keys)
	revs := make([]driver.Revision, keys)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
		revs[i] = mustPut(t, a, names[i], obj(names[i], 1), driver.IfAbsent())
	}
	woke := make([]chan error, keys)
	for i := range names {
		woke[i] = make(chan error, perKey)
		for range perKey {
			// An hour's poll: only the subscription can wake them in time.
			go func() { woke[i] <- st.Wait(ctx, names[i], revs[i], time.Hour) }()
		}
	}
	time.Sleep(200 * time.Millisecond) // let them subscribe (a write before is seen too)
	expect := func(i int, what string) {
		t.Helper()
		for range perKey {
			select {
			case err := <-woke[i]:
				if err != nil {
					t.Fatalf("a waiter of key %d after %s: %v", i, what, err)
				}
			case <-ctx.Done():
				t.Fatalf("the waiters of key %d did not wake after %s", i, what)
			}
		}
	}
	quiet := func(from int) {
		t.Helper()
		time.Sleep(300 * time.Millisecond)
		for i := from; i < keys; i++ {
			select {
			case err := <-woke[i]:
				t.Fatalf("a waiter of key %d woke from another key's write: %v", i, err)
			default:
			}
		}
	}
	mustPut(t, b, names[0], obj(names[0], 2), driver.IfMatch(revs[0]))
	expect(0, "a write from another connection")
	quiet(1)
	if err := b.Delete(ctx, names[1], driver.IfMatch(revs[1])); err != nil {
		t.Fatal(err)
	}
	expect(1, "a delete from another connection")
	quiet(2)
	// Writes through the Store's own adapter wake its waiters too.
	mustPut(t, a, names[2], obj(names[2], 2), driver.IfMatch(revs[2]))
	expect(2, "a write from the same connection")
	quiet(3)
	if n := counter.subs.Load(); n != 1 {
		t.Errorf("%d waiters on %d keys opened %d subscriptions; want 1", keys*perKey, keys, n)
	}
	// Closing the Store ends the subscription and wakes the rest.
	if err := st.Close(); err != nil {
		t.Fatalf("Store.Close: %v", err)
	}
	for i := 3; i < keys; i++ {
		for range perKey {
			select {
			case err := <-woke[i]:
				if !errors.Is(err, driver.ErrClosed) {
					t.Fatalf("a waiter after Store.Close: %v; want ErrClosed", err)
				}
			case <-ctx.Done():
				t.Fatalf("the waiters of key %d did not wake when the Store closed", i)
			}
		}
	}
}

func testClose(t *testing.T, a driver.Adapter, key string) {
	mustPut(t, a, key, obj(key, 1), driver.IfAbsent())
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	_, _, err := a.Get(ctx, key)
	wantErr(t, "Get after Close", err, driver.ErrClosed)
	_, err = a.Put(ctx, key, obj(key, 2), driver.Condition{})
	wantErr(t, "Put after Close", err, driver.ErrClosed)
	_, err = a.List(ctx)
	wantErr(t, "List after Close", err, driver.ErrClosed)
}

func randomPrefix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "drivertest-" + hex.EncodeToString(b) + "-"
}
