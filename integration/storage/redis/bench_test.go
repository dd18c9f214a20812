package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/redis"
)

func openAdapterB(b *testing.B, u string) driver.Adapter {
	a, err := driver.Open(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkStore(b *testing.B) {
	u := withQuery(b, redisURL(b), "prefix", uniquePrefix(b))
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return openAdapterB(b, u) })
}

// BenchmarkAdapter is Store's Load and Update without the record codec.
// Against BenchmarkBaseline it shows what the adapter alone adds to the
// plain client's round trips.
func BenchmarkAdapter(b *testing.B) {
	u := withQuery(b, redisURL(b), "prefix", uniquePrefix(b))
	drivertest.AdapterBenchmark(b, func(b *testing.B) driver.Adapter { return openAdapterB(b, u) })
}

// BenchmarkBaseline does with the bare client the round trips that
// BenchmarkStore's Load and Update stand for: GET, and GET then SET with
// no condition. The gap to BenchmarkAdapter is what the Lua script and the
// revision cost.
func BenchmarkBaseline(b *testing.B) {
	ctx := context.Background()
	c := plainClient(b)
	key := uniquePrefix(b) + "baseline"
	b.Cleanup(func() { c.Del(ctx, key) })
	drivertest.Baseline(b,
		func() ([]byte, error) { return c.Get(ctx, key).Bytes() },
		func(val []byte) error { return c.Set(ctx, key, val, 0).Err() })
}

// ExampleNew hands the adapter a client the application already has.
func ExampleNew() {
	client := goredis.NewClient(&goredis.Options{Addr: "localhost:6379"})
	defer client.Close()
	st := storage.NewStore(must(redis.New(client, &redis.Options{Prefix: "myapp:tokens:"})))
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
