package memcached_test

import (
	"context"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/memcached"
)

func BenchmarkStore(b *testing.B) {
	u := storeURL(b)
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return openAdapter(b, u) })
}

// BenchmarkAdapter is Store's Load and Update without the record codec.
// Against BenchmarkBaseline it shows what the adapter alone adds to the
// plain client's round trips.
func BenchmarkAdapter(b *testing.B) {
	u := storeURL(b)
	drivertest.AdapterBenchmark(b, func(b *testing.B) driver.Adapter { return openAdapter(b, u) })
}

// BenchmarkBaseline does with the bare client the round trips that
// BenchmarkStore's Load and Update stand for: get, and get then set with
// no condition. The gap to BenchmarkAdapter is what the revision and the
// cas cost.
func BenchmarkBaseline(b *testing.B) {
	c := memcache.New(memcachedAddr(b))
	c.MaxIdleConns = 16 // as storage.Open sets it
	b.Cleanup(func() { c.Close() })
	key := uniquePrefix(b) + "baseline"
	b.Cleanup(func() { c.Delete(key) })
	drivertest.Baseline(b,
		func() ([]byte, error) {
			it, err := c.Get(key)
			if err != nil {
				return nil, err
			}
			return it.Value, nil
		},
		func(val []byte) error { return c.Set(&memcache.Item{Key: key, Value: val}) })
}

// ExampleNew shares an access-token cache through a client the application
// already has; memcached can evict, so refresh tokens need a durable home
// as well (see the package documentation).
func ExampleNew() {
	client := memcache.New("10.0.0.1:11211", "10.0.0.2:11211")
	a, err := memcached.New(client, &memcached.Options{Prefix: "myapp:"})
	if err != nil {
		return
	}
	st := storage.NewStore(a)
	defer st.Close()
	_, _, _ = st.Load(context.Background(), "default")
}
