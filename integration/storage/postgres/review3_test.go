package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage/driver"
)

// review3: the NOTIFY channel is named after how the table was spelt in
// the URL ("tokencache.T" without schema=, "tokencache.public.T" with it),
// not after the table itself. Two processes that reach the same table,
// one naming its schema and one relying on search_path, write to and
// LISTEN on different channels: a waiter on one never hears the other's
// writes and sleeps until its own deadline (in tokencache, the end of the
// holder's lease) instead of waking at once.
func TestReview3WaitHearsWritesThroughOtherSpelling(t *testing.T) {
	table := uniqueTable()
	withSchema := openURL(t, storeURL(t, "table", table, "schema", "public"))
	defer withSchema.Close()
	bare := openURL(t, storeURL(t, "table", table))
	defer bare.Close()
	ctx := context.Background()

	rev, err := withSchema.Put(ctx, "p", []byte(`{"v":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := bare.Get(ctx, "p"); err != nil || got != rev {
		t.Fatalf("the two adapters do not share the table: %q %v", got, err)
	}
	woke := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		woke <- withSchema.(driver.Watcher).Wait(wctx, "p", rev)
	}()
	time.Sleep(500 * time.Millisecond) // the waiter listens
	start := time.Now()
	if _, err := bare.Put(ctx, "p", []byte(`{"v":2}`), driver.IfMatch(rev)); err != nil {
		t.Fatal(err)
	}
	err = <-woke
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait did not hear a write to the same table made through a URL without schema= (slept %v until its deadline)", time.Since(start))
	}
	if err != nil {
		t.Fatal(err)
	}
}
