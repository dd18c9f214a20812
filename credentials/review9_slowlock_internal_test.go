package credentials

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// slowPuts delays every Put by d, then applies it: a store that answers,
// slowly (a loaded database, a cross-region link).
type slowPuts struct {
	driver.Adapter
	d time.Duration
}

func (a slowPuts) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	select {
	case <-time.After(a.d):
	case <-ctx.Done():
		return "", driver.Wrap(storage.ErrUnavailable, "slow put cut", ctx.Err())
	}
	return a.Adapter.Put(ctx, key, value, cond)
}

// Process A writes its pending record to a slow store, each write within
// StoreTimeout: the write, then clearLease's second write, both under
// the entry lock, hold it for nearly two store timeouts. Process B's
// Token, which needs no refresh (the store holds a valid access token
// throughout), waits for the lock before it even reads the store, gives
// up after one StoreTimeout and fails with ErrUnpersisted naming A's
// entry. Every process of the machine fails its token calls for the
// profile while one writes slowly, or while one that holds the lock is
// stopped (SIGSTOP, a frozen cgroup): the lock couples processes that
// were independent, and a waiter's bound is shorter than a holder's.
func TestReview9SlowWriterFailsOtherProcessesTokenCalls(t *testing.T) {
	gen0, gen1 := review9Gens()
	ctx := context.Background()
	inner := memory.New(nil)
	const storeTimeout = 400 * time.Millisecond
	dir := t.TempDir()
	mk := func(a driver.Adapter) *Credentials {
		c, err := New(Config{Store: storage.NewNamedStore("review9-slow", a), Profile: "p", JournalDir: dir, StoreTimeout: storeTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := mk(slowPuts{Adapter: inner, d: storeTimeout * 3 / 4}), mk(inner)
	if _, err := b.store.Replace(ctx, nil, "", gen0.Clone()); err != nil {
		t.Fatal(err)
	}
	// A's pending record still carries A's lease, so the flush writes it
	// and then clears the lease: two slow writes.
	gen1.Lease = &storage.Lease{Owner: a.owner, Until: time.Now().Add(time.Minute), TTL: storage.Duration(time.Minute)}
	path, err := a.journal.save(a.store.Name(), gen1, true)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.pending = &pendingWrite{rec: gen1, journal: path, leaseEnd: time.Now().Add(time.Minute), notApplied: true, err: storage.ErrUnavailable}
	a.mu.Unlock()
	flushed := make(chan error, 1)
	go func() { flushed <- a.flushPending(ctx) }()
	time.Sleep(20 * time.Millisecond) // A holds the entry lock

	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tok, err := b.Token(tctx)
	if ferr := <-flushed; ferr != nil {
		t.Logf("A's slow flush: %v", ferr)
	}
	if err != nil {
		t.Fatalf("B's Token, with a valid access token in the store all along, failed while A wrote slowly: %v (ErrUnpersisted: %v)", err, errors.Is(err, ErrUnpersisted))
	}
	if tok.AccessToken == "" {
		t.Fatal("no access token")
	}
}
