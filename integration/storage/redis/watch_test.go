package redis_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/redis"
)

// TestWatchKeysOnePatternSubscription has a Store wait on many profiles
// and checks on the server that they share one pattern subscription and
// no channel subscription at all.
func TestWatchKeysOnePatternSubscription(t *testing.T) {
	c := plainClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := c.PubSubNumPat(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	st := storage.NewStore(must(redis.New(c, &redis.Options{Prefix: uniquePrefix(t)})))
	defer st.Close()
	const n = 50
	revs := make([]driver.Revision, n)
	for i := range n {
		// All written before anyone subscribes: no waiter hears a write.
		if revs[i], err = st.Adapter().Put(ctx, fmt.Sprintf("p%d", i), []byte(`{}`), driver.IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, n)
	for i := range n {
		go func() { done <- st.Wait(ctx, fmt.Sprintf("p%d", i), revs[i], time.Hour) }()
	}
	// Once one has subscribed, give the others time to do anything more.
	var pats int64
	for pats <= before && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		pats, _ = c.PubSubNumPat(ctx).Result()
	}
	time.Sleep(500 * time.Millisecond)
	pats, err = c.PubSubNumPat(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	chans, err := c.PubSubChannels(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pats-before != 1 || len(chans) != 0 {
		t.Errorf("%d waiters on %d profiles: %d pattern subscriptions, channels %q; want 1 and none", n, n, pats-before, chans)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-done; !errors.Is(err, driver.ErrClosed) {
			t.Fatalf("a waiter got %v on Close; want ErrClosed", err)
		}
	}
}

// TestWatchKeysReconnect cuts the subscription's connection: go-redis
// subscribes again, and since what was published meanwhile is lost, every
// waiter must be woken to re-read; later writes must wake waiters again.
func TestWatchKeysReconnect(t *testing.T) {
	c := plainClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := uniquePrefix(t)
	st := storage.NewStore(must(redis.New(c, &redis.Options{Prefix: prefix})))
	defer st.Close()
	other := must(redis.New(c, &redis.Options{Prefix: prefix}))
	rev, err := other.Put(ctx, "p", []byte(`{}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- st.Wait(ctx, "p", rev, time.Hour) }()
	time.Sleep(300 * time.Millisecond)
	if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait across a lost subscription: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a waiter slept through its subscription's reconnection")
	}
	go func() { done <- st.Wait(ctx, "p", rev, time.Hour) }()
	time.Sleep(300 * time.Millisecond)
	if _, err := other.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(rev)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a write after the reconnection did not wake its waiter")
	}
}
