// Package faultstore wraps a driver.Adapter and injects the failures a
// real store and its network produce, drawn from a seeded random source so
// that a simulation can replay them.
//
// Per call, each wrapper (an Adapter, one per simulated replica) may add
// latency, fail before the call reaches the store, fail after a write
// applied (the dangerous case: the Put or Delete happened and the caller is
// told driver.ErrUnavailable), or drop the reply (the write applied, then
// the call blocks until its context ends or Rates.Hang passes and fails).
// Partition cuts one wrapper off while the others over the same inner
// adapter go on working. World-level events, which every replica sees at
// once, belong to the World: RestartEmpty (a server that came back with no
// data) and Evict (a cache dropping one key).
//
// Determinism: every decision comes from the wrapper's own *rand.Rand,
// guarded by a mutex, so a wrapper driven by one goroutine in a fixed order
// draws the same faults for the same seed. Calls from several goroutines
// draw in the order they arrive, which the Go scheduler decides.
//
// The wrapper answers errors.ErrUnsupported to Wait when the inner adapter
// is no driver.Watcher, as the Watcher contract asks of wrappers.
//
// This package is for tests; nothing outside tests should import it.
package faultstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokencache/tokencache/storage/driver"
)

// Kind is a kind of injected fault.
type Kind int

const (
	// Latency delays a call by up to Rates.MaxLatency.
	Latency Kind = iota
	// FailBefore fails a call with driver.ErrUnavailable; nothing applied.
	FailBefore
	// FailAfter applies a Put or Delete and then reports
	// driver.ErrUnavailable, as a reply lost to a timeout would.
	FailAfter
	// DropReply applies the call, then blocks until the caller's context
	// ends or Rates.Hang passes, then fails.
	DropReply
	// Partitioned is a call refused because its wrapper is partitioned.
	Partitioned
	// RestartEmpty is the World losing every key at once.
	RestartEmpty
	// Evict is the World losing one key.
	Evict
	// Slow is not injected: the inner store took longer than
	// Rates.SlowAfter to answer (a loaded machine, a contended lock), or
	// the caller's deadline cut the call. It is recorded because the
	// caller's write may have failed for it.
	Slow

	numKinds
)

// Kinds lists every Kind, in order.
func Kinds() []Kind {
	k := make([]Kind, numKinds)
	for i := range k {
		k[i] = Kind(i)
	}
	return k
}

func (k Kind) String() string {
	switch k {
	case Latency:
		return "latency"
	case FailBefore:
		return "fail-before-apply"
	case FailAfter:
		return "fail-after-apply"
	case DropReply:
		return "dropped-reply"
	case Partitioned:
		return "partitioned"
	case RestartEmpty:
		return "restart-empty"
	case Evict:
		return "evict"
	case Slow:
		return "slow"
	}
	return "kind-" + strconv.Itoa(int(k))
}

// Rates are the per-call probabilities of each fault, in [0, 1]. At most
// one of FailBefore, FailAfter and DropReply hits one call; Latency comes
// on top. The zero Rates inject nothing.
type Rates struct {
	Latency    float64
	MaxLatency time.Duration // default 20ms
	FailBefore float64
	FailAfter  float64 // applies to Put and Delete; a read fails before
	DropReply  float64
	// Hang bounds a dropped reply when the caller's context has no
	// earlier deadline; default 1s.
	Hang time.Duration
	// SlowAfter, if set, records a Slow event for every call the inner
	// store took longer than this to answer, or that the caller's
	// deadline cut.
	SlowAfter time.Duration
}

// Counts is how many faults of each kind were injected.
type Counts [numKinds]int64

// Add returns the sum of c and d.
func (c Counts) Add(d Counts) Counts {
	for i := range c {
		c[i] += d[i]
	}
	return c
}

// Total is the number of faults of every kind.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

func (c Counts) String() string {
	s := ""
	for k, v := range c {
		if v == 0 {
			continue
		}
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", Kind(k), v)
	}
	if s == "" {
		return "none"
	}
	return s
}

// Event is one injected fault, for the schedule a failing run prints.
type Event struct {
	At      time.Time
	Replica string // the wrapper's name; empty for World events
	Call    int64  // the wrapper's call number, from 1; 0 for World events
	Op      string // get, put, delete, list, wait; the event for World ones
	Key     string
	Kind    Kind
	Detail  string // latency, or the inner error of a call that did not apply
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %-9s", e.At.Format("15:04:05.000"), e.Replica)
	if e.Call > 0 {
		s += fmt.Sprintf(" #%-4d", e.Call)
	}
	s += fmt.Sprintf(" %s %s %q", e.Kind, e.Op, e.Key)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// World is the inner adapter every wrapper shares and the log of what was
// injected into it. World events go through it.
type World struct {
	inner driver.Adapter

	// wmu serialises writes while onWrite is set, so that it sees them in
	// the order they applied.
	wmu     sync.Mutex
	onWrite func(Write)

	mu     sync.Mutex
	counts Counts
	events []Event
	// maxEvents bounds the log; counts stay exact beyond it.
	maxEvents int
}

// NewWorld returns a World over inner. The World owns inner: Close closes it.
func NewWorld(inner driver.Adapter) *World {
	return &World{inner: inner, maxEvents: 10000}
}

// Write is a change that applied to the inner store, as OnWrite sees it.
type Write struct {
	Replica string // the wrapper's name; empty for World events
	Op      string // "put" or "delete"
	Key     string
	Value   []byte // for put; the callee must not keep it
	Fault   Kind   // what the caller was told instead: FailAfter, DropReply, or -1 for the truth
	// Before is what the key held just before the write (nil: absent),
	// read under the same lock. A checker that finds something else there
	// than the last write it saw learns that a writer outside the World
	// (another process on the same store) changed the key in between.
	// BeforeKnown is false when that read failed.
	Before      []byte
	BeforeKnown bool
}

// OnWrite makes the World call fn after every write that applied to the
// inner store, whatever its caller was told, in the order the writes
// applied: while fn is set, writes through the World are serialised. A
// checker uses it to follow the store's history (say, that a value never
// goes back to an older version). Call it before the wrappers are used.
func (w *World) OnWrite(fn func(Write)) { w.onWrite = fn }

// write runs apply, an inner write, and reports it to onWrite if it applied
// (also when the inner store answered an error after applying it).
func (w *World) write(wr Write, apply func() error) error {
	if w.onWrite == nil {
		return apply()
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	wr.Before, wr.BeforeKnown = w.peek(wr.Key)
	err := apply()
	if err != nil && wr.BeforeKnown {
		// An error does not prove that nothing was written: a call whose
		// context ended mid-statement (SQLite) may have committed. Look.
		after, known := w.peek(wr.Key)
		switch {
		case !known:
		case wr.Op == "put" && after != nil && bytes.Equal(after, wr.Value) && !bytes.Equal(after, wr.Before),
			wr.Op == "delete" && after == nil && wr.Before != nil:
			if wr.Fault < 0 {
				wr.Fault = FailAfter // the caller was told an error
			}
			w.onWrite(wr)
		}
		return err
	}
	if err == nil {
		w.onWrite(wr)
	}
	return err
}

// peek reads what the inner store holds for key (nil: absent); known is
// false when the read failed.
func (w *World) peek(key string) (value []byte, known bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch b, _, err := w.inner.Get(ctx, key); {
	case err == nil:
		return b, true
	case errors.Is(err, driver.ErrNotFound):
		return nil, true
	}
	return nil, false
}

// Inner returns the adapter the wrappers share, for checks that must see
// the store without faults.
func (w *World) Inner() driver.Adapter { return w.inner }

// Close closes the inner adapter.
func (w *World) Close() error { return w.inner.Close() }

// Counts returns how many faults of each kind were injected so far, by
// every wrapper and by the World.
func (w *World) Counts() Counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts
}

// Events returns the injected faults in the order they were injected (the
// first 10,000).
func (w *World) Events() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Event(nil), w.events...)
}

func (w *World) record(e Event) {
	e.At = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts[e.Kind]++
	if len(w.events) < w.maxEvents {
		w.events = append(w.events, e)
	}
}

// RestartEmpty deletes every key of the inner store, as a server restarted
// without persistence would have lost them.
func (w *World) RestartEmpty(ctx context.Context) error {
	keys, err := w.inner.List(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := w.write(Write{Op: "delete", Key: k, Fault: -1}, func() error { return w.inner.Delete(ctx, k, driver.Condition{}) }); err != nil {
			return err
		}
	}
	w.record(Event{Op: "restart-empty", Kind: RestartEmpty, Detail: strconv.Itoa(len(keys)) + " keys"})
	return nil
}

// Evict deletes key from the inner store, as a cache under memory pressure
// would.
func (w *World) Evict(ctx context.Context, key string) error {
	if err := w.write(Write{Op: "delete", Key: key, Fault: -1}, func() error { return w.inner.Delete(ctx, key, driver.Condition{}) }); err != nil {
		return err
	}
	w.record(Event{Op: "evict", Key: key, Kind: Evict})
	return nil
}

// Adapter is one replica's faulty view of the World's store. It implements
// driver.Adapter and driver.Watcher.
type Adapter struct {
	w    *World
	name string

	mu    sync.Mutex // guards rnd and rates
	rnd   *rand.Rand
	rates Rates

	calls       atomic.Int64
	partitioned atomic.Bool
	closed      atomic.Bool
}

// Adapter returns a new wrapper named name (it names the replica in the
// schedule) that draws its faults from rnd with rates.
func (w *World) Adapter(name string, rnd *rand.Rand, rates Rates) *Adapter {
	a := &Adapter{w: w, name: name, rnd: rnd}
	a.SetRates(rates)
	return a
}

// SetRates replaces the fault rates, e.g. with the zero Rates to let a
// simulation settle at its end.
func (a *Adapter) SetRates(r Rates) {
	if r.MaxLatency <= 0 {
		r.MaxLatency = 20 * time.Millisecond
	}
	if r.Hang <= 0 {
		r.Hang = time.Second
	}
	a.mu.Lock()
	a.rates = r
	a.mu.Unlock()
}

// Partition cuts this wrapper off from the store (every call fails with
// driver.ErrUnavailable and applies nothing) until Partition(false).
func (a *Adapter) Partition(on bool) { a.partitioned.Store(on) }

// Partitioned reports whether the wrapper is cut off.
func (a *Adapter) Partitioned() bool { return a.partitioned.Load() }

// plan is what happens to one call, drawn before it runs.
type plan struct {
	delay     time.Duration
	fault     Kind // FailBefore, FailAfter, DropReply, or -1 for none
	slowAfter time.Duration
}

func (a *Adapter) draw(write bool) plan {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rates
	p := plan{fault: -1, slowAfter: r.SlowAfter}
	// Always draw the same number of values per call, so that changing one
	// rate does not shift the faults every later call gets.
	lat, dur, f := a.rnd.Float64(), a.rnd.Int64N(int64(r.MaxLatency)+1), a.rnd.Float64()
	if lat < r.Latency {
		p.delay = time.Duration(dur)
	}
	switch {
	case f < r.FailBefore:
		p.fault = FailBefore
	case f < r.FailBefore+r.FailAfter:
		p.fault = FailAfter
		if !write {
			p.fault = FailBefore
		}
	case f < r.FailBefore+r.FailAfter+r.DropReply:
		p.fault = DropReply
	}
	return p
}

// call runs op through the faults drawn for it. apply does the real call
// and reports whether it changed the store (a write that succeeded).
func (a *Adapter) call(ctx context.Context, op, key string, write bool, apply func(ctx context.Context, told Kind) error) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "faultstore: "+op, nil)
	}
	n := a.calls.Add(1)
	ev := Event{Replica: a.name, Call: n, Op: op, Key: key}
	if a.partitioned.Load() {
		ev.Kind = Partitioned
		a.w.record(ev)
		return driver.NotApplied(driver.Wrap(driver.ErrUnavailable, "faultstore: "+op+": partitioned", nil))
	}
	p := a.draw(write)
	if p.delay > 0 {
		e := ev
		e.Kind, e.Detail = Latency, p.delay.String()
		a.w.record(e)
		t := time.NewTimer(p.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			// Given up before the call reached the inner store: nothing
			// was applied, and the caller may know it.
			t.Stop()
			return driver.NotApplied(driver.Wrap(driver.ErrUnavailable, "faultstore: "+op, ctx.Err()))
		}
	}
	if p.fault == FailBefore {
		ev.Kind = FailBefore
		a.w.record(ev)
		return driver.NotApplied(driver.Wrap(driver.ErrUnavailable, "faultstore: "+op+": injected failure before apply", nil))
	}
	began := time.Now()
	err := apply(ctx, p.fault)
	// Slow also when the caller's deadline cut the call: it may end
	// before SlowAfter (a deadline shorter than the store timeout), and
	// either way the store did not answer in time.
	cut := err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)
	if took := time.Since(began); p.slowAfter > 0 && (took > p.slowAfter || cut) {
		e := ev
		e.Kind, e.Detail = Slow, took.Round(time.Millisecond).String()
		a.w.record(e)
	}
	if p.fault < 0 || (err != nil && p.fault == FailAfter) {
		// A write that did not apply has nothing to hide: pass its
		// answer on (a lost conflict reply is no more interesting than a
		// failure before apply).
		return err
	}
	ev.Kind = p.fault
	if err != nil {
		ev.Detail = "inner: " + errKind(err)
	}
	a.w.record(ev)
	if p.fault == DropReply {
		a.mu.Lock()
		hang := a.rates.Hang
		a.mu.Unlock()
		t := time.NewTimer(hang)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return driver.Wrap(driver.ErrUnavailable, "faultstore: "+op+": reply dropped", ctx.Err())
		}
		return driver.Wrap(driver.ErrUnavailable, "faultstore: "+op+": reply dropped", nil)
	}
	return driver.Wrap(driver.ErrUnavailable, "faultstore: "+op+": injected failure after apply", nil)
}

// errKind names the sentinel err matches, never its text (which may be a
// backend's and is not ours to log).
func errKind(err error) string {
	for _, s := range []error{driver.ErrNotFound, driver.ErrConflict, driver.ErrUnavailable, driver.ErrCorrupt,
		driver.ErrInvalid, driver.ErrReadOnly, driver.ErrClosed, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "other error"
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) (value []byte, rev driver.Revision, err error) {
	err = a.call(ctx, "get", key, false, func(ctx context.Context, _ Kind) error {
		value, rev, err = a.w.inner.Get(ctx, key)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return value, rev, nil
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (rev driver.Revision, err error) {
	err = a.call(ctx, "put", key, true, func(ctx context.Context, told Kind) error {
		return a.w.write(Write{Replica: a.name, Op: "put", Key: key, Value: value, Fault: told}, func() error {
			rev, err = a.w.inner.Put(ctx, key, value, cond)
			return err
		})
	})
	if err != nil {
		return "", err
	}
	return rev, nil
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	return a.call(ctx, "delete", key, true, func(ctx context.Context, told Kind) error {
		return a.w.write(Write{Replica: a.name, Op: "delete", Key: key, Fault: told}, func() error {
			return a.w.inner.Delete(ctx, key, cond)
		})
	})
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) (keys []string, err error) {
	err = a.call(ctx, "list", "", false, func(ctx context.Context, _ Kind) error {
		keys, err = a.w.inner.List(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// Wait implements driver.Watcher: errors.ErrUnsupported when the inner
// adapter cannot watch; while partitioned, it waits out ctx (a cut-off
// client hears of no change) and fails. Faults are not drawn for Wait: a
// waiter re-reads anyway, so a lost wake-up only costs time.
func (a *Adapter) Wait(ctx context.Context, key string, rev driver.Revision) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "faultstore: wait", nil)
	}
	w, ok := a.w.inner.(driver.Watcher)
	if !ok {
		return errors.ErrUnsupported
	}
	if a.partitioned.Load() {
		<-ctx.Done()
		return driver.Wrap(driver.ErrUnavailable, "faultstore: wait: partitioned", ctx.Err())
	}
	return w.Wait(ctx, key, rev)
}

// Close implements driver.Adapter. It closes this wrapper only: the inner
// adapter belongs to the World, which other wrappers still use.
func (a *Adapter) Close() error {
	a.closed.Store(true)
	return nil
}

// Calls returns how many calls the wrapper has had (Wait excluded).
func (a *Adapter) Calls() int64 { return a.calls.Load() }
