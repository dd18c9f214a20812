package memcached_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memcached"
)

// TestRestartABA: memcached restarts its CAS counter with the server, so
// after a restart a different item can carry the very CAS id an adapter
// saw before. A Put conditioned on a revision read before the restart must
// still lose, even when the profile's new item has that CAS id.
func TestRestartABA(t *testing.T) {
	servers.SkipShort(t)
	ctx := context.Background()
	// A server of its own, since it is restarted.
	srv, err := servers.StartMemcached(ctx)
	if err != nil {
		t.Fatalf("memcached: %v", err)
	}
	t.Cleanup(func() { srv.Terminate(context.Background()) })
	raw := memcache.New(srv.Addr)
	defer raw.Close()
	prefix := uniquePrefix(t)
	open := func() *memcached.Adapter {
		c := memcache.New(srv.Addr)
		t.Cleanup(func() { c.Close() })
		a, err := memcached.New(c, &memcached.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b := open(), open()
	itemKey := prefix + b64("p")

	// Some traffic first, so that the CAS id the profile ends on is one
	// the restarted server reaches only after the profile is created again.
	for range 20 {
		if err := raw.Set(&memcache.Item{Key: prefix + "filler", Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	_, stale, err := a.Get(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	before, err := raw.Get(itemKey)
	if err != nil {
		t.Fatal(err)
	}

	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Each client's idle connections went with the old server; each fails
	// one call and is dropped. Use them up on a key the test does not
	// touch, as a process's other traffic would, so that the writes below
	// reach the new server. The adapters keep whatever they remember.
	for _, x := range []*memcached.Adapter{a, b} {
		for i := 0; ; i++ {
			_, _, err := x.Get(ctx, "warm-up")
			if errors.Is(err, driver.ErrNotFound) {
				break
			}
			if i == 10 {
				t.Fatalf("after the restart: %v", err)
			}
		}
	}
	for i := 0; raw.Ping() != nil; i++ {
		if i == 10 {
			t.Fatal("the test's own client cannot reach the restarted server")
		}
	}

	// Another process creates the profile afresh and keeps writing it
	// until its item has the CAS id seen before the restart.
	if _, err := b.Put(ctx, "p", []byte(`{"n":2}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	var it *memcache.Item
	for {
		if it, err = raw.Get(itemKey); err != nil {
			t.Fatal(err)
		}
		if it.CasID >= before.CasID {
			break
		}
		if err := raw.Set(it); err != nil {
			t.Fatal(err)
		}
	}
	if it.CasID != before.CasID {
		t.Fatalf("could not line the CAS ids up: %d after the restart, %d before", it.CasID, before.CasID)
	}
	_, fresh, err := b.Get(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}

	if _, err := a.Put(ctx, "p", []byte(`{"n":3}`), driver.IfMatch(stale)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a revision from before the restart: %v, want ErrConflict", err)
	}
	if err := a.Delete(ctx, "p", driver.IfMatch(stale)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Delete on a revision from before the restart: %v, want ErrConflict", err)
	}
	v, rev, err := b.Get(ctx, "p")
	if err != nil || rev != fresh || string(v) != `{"n":2}` {
		t.Fatalf("after the stale writes: %s at %q (%v), want {\"n\":2} at %q", v, rev, err, fresh)
	}
}
