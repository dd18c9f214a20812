package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/redis"
	"github.com/tokencache/tokencache/storage/storagetest"
)

func openAdapterB(b *testing.B, u string) storage.Adapter {
	a, err := storage.OpenAdapter(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkStore(b *testing.B) {
	u := withQuery(b, redisURL(b), "prefix", uniquePrefix(b))
	storagetest.Benchmark(b, func(b *testing.B) storage.Adapter {
		a, err := storage.OpenAdapter(context.Background(), u)
		if err != nil {
			b.Fatal(err)
		}
		return a
	})
}

// BenchmarkAdapter is Store's Load and Update without the record codec:
// Get, and Get then Put on the revision read. Against BenchmarkBaseline it
// shows what the adapter alone adds to the plain client's round trips.
func BenchmarkAdapter(b *testing.B) {
	ctx := context.Background()
	a := openAdapterB(b, withQuery(b, redisURL(b), "prefix", uniquePrefix(b)))
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
// GET, and GET then SET with no condition. The gap between the two is
// what the Lua script, the revision and the record encoding cost.
func BenchmarkBaseline(b *testing.B) {
	ctx := context.Background()
	opt, err := goredis.ParseURL(redisURL(b))
	if err != nil {
		b.Fatal(err)
	}
	c := goredis.NewClient(opt)
	b.Cleanup(func() { c.Close() })
	key := uniquePrefix(b) + "baseline"
	val, err := storage.EncodeRecord(storagetest.SampleRecord("bench"))
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Set(ctx, key, val, 0).Err(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Del(ctx, key) })
	b.Run("GET", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Get(ctx, key).Bytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GET+SET", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := c.Get(ctx, key).Bytes()
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Set(ctx, key, v, 0).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// ExampleNew hands the adapter a client the application already has.
func ExampleNew() {
	client := goredis.NewClient(&goredis.Options{Addr: "localhost:6379"})
	defer client.Close()
	st := storage.NewStore(redis.New(client, redis.Options{Prefix: "myapp:tokens:"}))
	defer st.Close()
	_, _, _ = st.Load(context.Background(), "default")
}

// Example_open picks the adapter from configuration.
func Example_open() {
	// A Cluster: several seed nodes, profiles under "tc:".
	st, err := storage.Open(context.Background(), "redis://10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379/?cluster=true&prefix=tc:")
	if err != nil {
		return
	}
	defer st.Close()
}
