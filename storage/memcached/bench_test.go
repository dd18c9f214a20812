package memcached_test

import (
	"context"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memcached"
	"github.com/tokencache/tokencache/storage/storagetest"
)

func BenchmarkStore(b *testing.B) {
	u := storeURL(b)
	storagetest.Benchmark(b, func(b *testing.B) storage.Adapter { return openAdapter(b, u) })
}

// BenchmarkAdapter is Store's Load and Update without the record codec:
// Get, and Get then Put on the revision read. Against BenchmarkBaseline it
// shows what the adapter alone adds to the plain client's round trips.
func BenchmarkAdapter(b *testing.B) {
	ctx := context.Background()
	a := openAdapter(b, storeURL(b))
	b.Cleanup(func() { a.Close() })
	val, err := storage.EncodeRecord(storagetest.SampleRecord("bench"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := a.Put(ctx, "bench", val, storage.Condition{}); err != nil {
		b.Fatal(err)
	}
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := a.Get(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get+PutIfMatch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, rev, err := a.Get(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := a.Put(ctx, "bench", v, storage.IfMatch(rev)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBaseline does with the bare client the round trips that
// BenchmarkStore's Load and Update stand for, on a value of the same size:
// get, and get then set with no condition. The gap is what the revision,
// the cas and the record encoding cost.
func BenchmarkBaseline(b *testing.B) {
	c := memcache.New(memcachedAddr(b))
	c.MaxIdleConns = 16 // as storage.Open sets it
	b.Cleanup(func() { c.Close() })
	key := uniquePrefix(b) + "baseline"
	val, err := storage.EncodeRecord(storagetest.SampleRecord("bench"))
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Set(&memcache.Item{Key: key, Value: val}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Delete(key) })
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Get(key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get+Set", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			it, err := c.Get(key)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Set(&memcache.Item{Key: key, Value: it.Value}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// ExampleNew shares an access-token cache through a client the application
// already has; memcached can evict, so refresh tokens need a durable home
// as well (see the package documentation).
func ExampleNew() {
	client := memcache.New("10.0.0.1:11211", "10.0.0.2:11211")
	a, err := memcached.New(client, memcached.Options{Prefix: "myapp:"})
	if err != nil {
		return
	}
	st := storage.NewStore(a)
	defer st.Close()
	_, _, _ = st.Load(context.Background(), "default")
}
