package faultstore_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/memory"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

// With no faults the wrapper is a conforming adapter, Watcher included.
func TestConformanceWithoutFaults(t *testing.T) {
	w := faultstore.NewWorld(memory.New(nil))
	defer w.Close()
	n := uint64(0)
	drivertest.Run(t, func(t *testing.T) driver.Adapter {
		n++
		return w.Adapter("c", seeded(n), faultstore.Rates{})
	})
	if c := w.Counts(); c.Total() != 0 {
		t.Fatalf("faults injected with zero rates: %v", c)
	}
}

func TestFailBeforeAppliesNothing(t *testing.T) {
	w := faultstore.NewWorld(memory.New(nil))
	a := w.Adapter("r1", seeded(1), faultstore.Rates{FailBefore: 1})
	_, err := a.Put(context.Background(), "k", []byte(`{}`), driver.Condition{})
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	if _, _, err := w.Inner().Get(context.Background(), "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("inner Get: %v; the write must not have applied", err)
	}
	if c := w.Counts(); c[faultstore.FailBefore] != 1 {
		t.Fatalf("counts %v", c)
	}
}

// A write whose caller gives up during the injected latency never reached
// the store, and says so: a refresher may then restore a held-back token.
func TestLatencyCutShortAppliesNothing(t *testing.T) {
	w := faultstore.NewWorld(memory.New(nil))
	a := w.Adapter("r1", seeded(1), faultstore.Rates{Latency: 1, MaxLatency: time.Second})
	var err error
	for range 20 { // the latency is drawn up to MaxLatency: some exceed 1 ms
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err = a.Put(ctx, "k", []byte(`{}`), driver.Condition{})
		cancel()
		if err != nil {
			break
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, driver.ErrNotApplied) {
		t.Fatalf("Put cut short during latency: %v, want the deadline marked ErrNotApplied", err)
	}
	if _, _, err := w.Inner().Get(context.Background(), "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("inner Get: %v; the write must not have applied", err)
	}
}

// The dangerous one: the write lands and the caller is told it failed.
func TestFailAfterApplies(t *testing.T) {
	ctx := context.Background()
	w := faultstore.NewWorld(memory.New(nil))
	a := w.Adapter("r1", seeded(1), faultstore.Rates{FailAfter: 1})
	_, err := a.Put(ctx, "k", []byte(`{"v":1}`), driver.IfAbsent())
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	v, _, err := w.Inner().Get(ctx, "k")
	if err != nil || string(v) != `{"v":1}` {
		t.Fatalf("inner Get: %q, %v; the write must have applied", v, err)
	}
	// A write that fails in the store passes its own answer on.
	if _, err := a.Put(ctx, "k", []byte(`{"v":2}`), driver.IfAbsent()); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("conflicting Put: %v, want ErrConflict", err)
	}
	if err := a.Delete(ctx, "k", driver.Condition{}); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := w.Inner().Get(ctx, "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("inner Get after Delete: %v; the delete must have applied", err)
	}
	// Reads cannot apply anything: they fail before.
	if _, _, err := a.Get(ctx, "k"); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Get: %v", err)
	}
	c := w.Counts()
	if c[faultstore.FailAfter] != 2 || c[faultstore.FailBefore] != 1 {
		t.Fatalf("counts %v", c)
	}
}

func TestDropReplyAppliesAndBlocksUntilContextEnds(t *testing.T) {
	w := faultstore.NewWorld(memory.New(nil))
	a := w.Adapter("r1", seeded(1), faultstore.Rates{DropReply: 1, Hang: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.Put(ctx, "k", []byte(`{}`), driver.Condition{})
	if err == nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("Put returned %v after %v; want an error once ctx ended", err, time.Since(start))
	}
	if _, _, err := w.Inner().Get(context.Background(), "k"); err != nil {
		t.Fatalf("inner Get: %v; the write must have applied", err)
	}
	// Without a deadline the hang is bounded.
	a.SetRates(faultstore.Rates{DropReply: 1, Hang: 20 * time.Millisecond})
	if _, err := a.Put(context.Background(), "k", []byte(`{}`), driver.Condition{}); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put: %v", err)
	}
	if c := w.Counts(); c[faultstore.DropReply] != 2 {
		t.Fatalf("counts %v", c)
	}
}

func TestPartitionCutsOffOneReplica(t *testing.T) {
	ctx := context.Background()
	w := faultstore.NewWorld(memory.New(nil))
	a := w.Adapter("a", seeded(1), faultstore.Rates{})
	b := w.Adapter("b", seeded(2), faultstore.Rates{})
	a.Partition(true)
	if _, err := a.Put(ctx, "k", []byte(`{}`), driver.Condition{}); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("partitioned Put: %v", err)
	}
	if _, err := b.Put(ctx, "k", []byte(`{"b":1}`), driver.IfAbsent()); err != nil {
		t.Fatalf("the other replica's Put: %v (the partitioned one must not have written)", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := a.Wait(wctx, "k", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("partitioned Wait: %v; want it to hear of no change until ctx ends", err)
	}
	a.Partition(false)
	if v, _, err := a.Get(ctx, "k"); err != nil || string(v) != `{"b":1}` {
		t.Fatalf("healed Get: %q, %v", v, err)
	}
	if c := w.Counts(); c[faultstore.Partitioned] != 1 {
		t.Fatalf("counts %v", c)
	}
}

func TestWorldEvents(t *testing.T) {
	ctx := context.Background()
	w := faultstore.NewWorld(memory.New(nil))
	a := w.Adapter("a", seeded(1), faultstore.Rates{})
	for _, k := range []string{"x", "y", "z"} {
		if _, err := a.Put(ctx, k, []byte(`{}`), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Evict(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	keys, _ := a.List(ctx)
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"y", "z"}) {
		t.Fatalf("after Evict: %v", keys)
	}
	if err := w.RestartEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := a.List(ctx); len(keys) != 0 {
		t.Fatalf("after RestartEmpty: %v", keys)
	}
	c := w.Counts()
	if c[faultstore.Evict] != 1 || c[faultstore.RestartEmpty] != 1 {
		t.Fatalf("counts %v", c)
	}
}

// The same seed draws the same faults for the same sequence of calls.
func TestSameSeedSameSchedule(t *testing.T) {
	run := func(seed uint64) []string {
		w := faultstore.NewWorld(memory.New(nil))
		a := w.Adapter("r", seeded(seed), faultstore.Rates{
			Latency: 0.2, MaxLatency: time.Millisecond, FailBefore: 0.1, FailAfter: 0.1, DropReply: 0.1, Hang: time.Millisecond})
		for range 200 {
			a.Put(context.Background(), "k", []byte(`{}`), driver.Condition{})
			a.Get(context.Background(), "k")
		}
		var out []string
		for _, e := range w.Events() {
			out = append(out, e.Op+" "+e.Kind.String()+" "+e.Detail)
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Fatalf("seed 7 gave %d and %d events, or different ones", len(a), len(b))
	}
	if slices.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same schedule")
	}
}

// notWatcher hides the memory adapter's Wait.
type notWatcher struct{ driver.Adapter }

func TestWaitUnsupportedWhenInnerCannotWatch(t *testing.T) {
	w := faultstore.NewWorld(notWatcher{memory.New(nil)})
	a := w.Adapter("a", seeded(1), faultstore.Rates{})
	if err := a.Wait(context.Background(), "k", ""); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Wait: %v, want errors.ErrUnsupported", err)
	}
	// The Store then polls instead of failing.
	st := storage.NewStore(a)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := st.Wait(ctx, "k", "", time.Millisecond); err != nil {
		t.Fatalf("Store.Wait: %v", err)
	}
}

func TestCloseLeavesTheWorldOpen(t *testing.T) {
	w := faultstore.NewWorld(memory.New(nil))
	a := w.Adapter("a", seeded(1), faultstore.Rates{})
	b := w.Adapter("b", seeded(2), faultstore.Rates{})
	a.Close()
	if _, _, err := a.Get(context.Background(), "k"); !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := b.Put(context.Background(), "k", []byte(`{}`), driver.Condition{}); err != nil {
		t.Fatalf("the other wrapper: %v", err)
	}
}

// OnWrite sees every write that applied, what its caller was told, and
// World events, in order; not the writes that did not apply.
func TestOnWrite(t *testing.T) {
	ctx := context.Background()
	w := faultstore.NewWorld(memory.New(nil))
	var got []string
	w.OnWrite(func(wr faultstore.Write) {
		told := "ok"
		if wr.Fault >= 0 {
			told = wr.Fault.String()
		}
		got = append(got, wr.Replica+" "+wr.Op+" "+wr.Key+" "+string(wr.Value)+" "+told)
	})
	a := w.Adapter("a", seeded(1), faultstore.Rates{})
	a.Put(ctx, "k", []byte(`{"n":1}`), driver.IfAbsent())
	a.Put(ctx, "k", []byte(`{"n":2}`), driver.IfAbsent()) // conflict: not applied
	a.SetRates(faultstore.Rates{FailAfter: 1})
	a.Put(ctx, "k", []byte(`{"n":3}`), driver.Condition{})
	a.SetRates(faultstore.Rates{FailBefore: 1})
	a.Put(ctx, "k", []byte(`{"n":4}`), driver.Condition{}) // failed before: not applied
	w.Evict(ctx, "k")
	want := []string{`a put k {"n":1} ok`, `a put k {"n":3} fail-after-apply`, ` delete k  ok`}
	if !slices.Equal(got, want) {
		t.Fatalf("writes seen:\n%q\nwant\n%q", got, want)
	}
}

// committedAnyway is an adapter whose writes apply and then report an
// error, as an SQLite statement cut by its context after it committed.
type committedAnyway struct{ driver.Adapter }

func (c committedAnyway) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	c.Adapter.Put(ctx, key, value, cond)
	return "", context.DeadlineExceeded
}

// OnWrite also sees a write the inner store applied but answered with an
// error, as failed-after-apply, and each write says what the key held
// before it: a change by a writer outside the World shows there.
func TestOnWriteSeesWritesThatErredAfterApplying(t *testing.T) {
	ctx := context.Background()
	inner := memory.New(nil)
	w := faultstore.NewWorld(committedAnyway{inner})
	var got []faultstore.Write
	w.OnWrite(func(wr faultstore.Write) { got = append(got, wr) })
	a := w.Adapter("a", seeded(1), faultstore.Rates{})
	if _, err := a.Put(ctx, "k", []byte(`{"n":1}`), driver.Condition{}); err == nil {
		t.Fatal("the inner error was not passed on")
	}
	inner.Put(ctx, "k", []byte(`{"n":2}`), driver.Condition{}) // outside the World
	a.Put(ctx, "k", []byte(`{"n":3}`), driver.Condition{})
	if len(got) != 2 {
		t.Fatalf("%d writes seen, want 2: %+v", len(got), got)
	}
	if got[0].Fault != faultstore.FailAfter || !got[0].BeforeKnown || got[0].Before != nil {
		t.Errorf("first write seen as %+v, want failed-after-apply over an absent key", got[0])
	}
	if string(got[1].Before) != `{"n":2}` {
		t.Errorf("second write found %q before it, want the outside write", got[1].Before)
	}
}

// blocking is an adapter whose Put waits for its caller's context.
type blocking struct{ driver.Adapter }

func (blocking) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

// A call the caller's deadline cut is Slow even when the deadline came
// before SlowAfter: the store did not answer in time for that caller.
func TestCallCutByDeadlineIsSlow(t *testing.T) {
	w := faultstore.NewWorld(blocking{memory.New(nil)})
	a := w.Adapter("a", seeded(1), faultstore.Rates{SlowAfter: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.Put(ctx, "k", []byte(`{}`), driver.Condition{}); err == nil {
		t.Fatal("Put succeeded")
	}
	if n := w.Counts()[faultstore.Slow]; n != 1 {
		t.Fatalf("%d slow calls recorded, want 1", n)
	}
}
