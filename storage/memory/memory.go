// Package memory is an in-process storage adapter: the fastest store for a
// single process and the reference the conformance suite is checked against.
// Its URL is "memory://NAME"; every Open of the same NAME in one process
// shares the data, like separate connections to one server. New(nil) makes
// one with data of its own; New(&Options{Name: NAME}) is memory://NAME.
package memory

import (
	"context"
	"net/url"
	"strconv"
	"sync"

	"github.com/tokencache/tokencache/storage/driver"
)

func init() {
	driver.Register("memory", OpenURL)
}

// Options configures New. The zero Options, and nil, make an adapter with
// data of its own.
type Options struct {
	// Name, when set, makes the adapter one of the process's adapters over
	// the data of that name, as memory://NAME does: they share it, like
	// separate connections to one server. Closing one does not drop the
	// data, which the others may still use.
	Name string
}

// New returns an adapter over empty data of its own, or over the
// process-wide data opts.Name names. It has nothing to reach and nothing
// to validate, so it returns no error.
func New(opts *Options) *Adapter {
	if opts != nil && opts.Name != "" {
		return shared(opts.Name)
	}
	return &Adapter{data: newData()}
}

// OpenURL returns an adapter over the process-wide data memory://NAME
// names; it is the opener the package registers for "memory".
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	return shared(u.Host + u.Path), nil
}

var (
	sharedMu   sync.Mutex
	sharedData = map[string]*data{}
)

func shared(name string) *Adapter {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	d, ok := sharedData[name]
	if !ok {
		d = newData()
		sharedData[name] = d
	}
	return &Adapter{data: d}
}

// Adapter implements driver.Adapter and driver.Watcher.
type Adapter struct {
	*data
	mu     sync.RWMutex
	closed bool
}

type data struct {
	mu      sync.RWMutex
	entries map[string]entry
	seq     uint64
	changed chan struct{} // closed and replaced on every write: a broadcast
}

type entry struct {
	value []byte
	rev   driver.Revision
}

func newData() *data {
	return &data{entries: map[string]entry{}, changed: make(chan struct{})}
}

func (a *Adapter) alive(ctx context.Context, op string) error {
	a.mu.RLock()
	closed := a.closed
	a.mu.RUnlock()
	if closed {
		return driver.Wrap(driver.ErrClosed, "memory: "+op, nil)
	}
	return ctx.Err()
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.alive(ctx, "get"); err != nil {
		return nil, "", err
	}
	a.data.mu.RLock()
	e, ok := a.entries[key]
	a.data.mu.RUnlock()
	if !ok {
		return nil, "", driver.Wrap(driver.ErrNotFound, "memory: get "+strconv.Quote(key), nil)
	}
	// Values are never mutated in place, so sharing the slice is safe as
	// long as callers do not write to it; copy anyway, the contract says
	// the caller owns what Get returns.
	return append([]byte(nil), e.value...), e.rev, nil
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if err := a.alive(ctx, "put"); err != nil {
		return "", err
	}
	a.data.mu.Lock()
	defer a.data.mu.Unlock()
	if !cond.Holds(a.entries[key].rev) {
		return "", driver.Wrap(driver.ErrConflict, "memory: put "+strconv.Quote(key)+" "+cond.String(), nil)
	}
	a.seq++
	rev := driver.Revision(strconv.FormatUint(a.seq, 10))
	a.entries[key] = entry{value: append([]byte(nil), value...), rev: rev}
	a.notifyLocked()
	return rev, nil
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := a.alive(ctx, "delete"); err != nil {
		return err
	}
	a.data.mu.Lock()
	defer a.data.mu.Unlock()
	if !cond.Holds(a.entries[key].rev) {
		return driver.Wrap(driver.ErrConflict, "memory: delete "+strconv.Quote(key)+" "+cond.String(), nil)
	}
	if _, ok := a.entries[key]; ok {
		delete(a.entries, key)
		a.notifyLocked()
	}
	return nil
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.alive(ctx, "list"); err != nil {
		return nil, err
	}
	a.data.mu.RLock()
	defer a.data.mu.RUnlock()
	keys := make([]string, 0, len(a.entries))
	for k := range a.entries {
		keys = append(keys, k)
	}
	return keys, nil
}

// Wait implements driver.Watcher.
func (a *Adapter) Wait(ctx context.Context, key string, rev driver.Revision) error {
	if err := a.alive(ctx, "wait"); err != nil {
		return err
	}
	a.data.mu.RLock()
	cur, ch := a.entries[key].rev, a.changed
	a.data.mu.RUnlock()
	if cur != rev {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close implements driver.Adapter.
func (a *Adapter) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	return nil
}

func (d *data) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}
