package etcd_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokencache/tokencache/integration/internal/benchratio"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/etcd"
)

func openAdapterB(b *testing.B, u string) driver.Adapter { return openAdapter(b, u) }

func BenchmarkStore(b *testing.B) {
	u := prefixed(b)
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return openAdapterB(b, u) })
}

// BenchmarkAdapter is Store's Load and Update without the record codec.
// Against BenchmarkBaseline it shows what the adapter alone adds to the
// plain client's round trips.
func BenchmarkAdapter(b *testing.B) {
	u := prefixed(b)
	drivertest.AdapterBenchmark(b, func(b *testing.B) driver.Adapter { return openAdapterB(b, u) })
}

// BenchmarkBaseline does with the bare client the round trips that
// BenchmarkStore's Load and Update stand for: a linearizable Get, and Get
// then an unconditional Put. The gap to BenchmarkAdapter is what the
// transaction's compare costs.
func BenchmarkBaseline(b *testing.B) {
	ctx := context.Background()
	c := plainClient(b)
	key := uniquePrefix() + "baseline"
	b.Cleanup(func() { c.Delete(ctx, key) })
	drivertest.Baseline(b,
		func() ([]byte, error) {
			resp, err := c.Get(ctx, key)
			if err != nil || len(resp.Kvs) == 0 {
				return nil, errors.Join(err, errors.New("missing"))
			}
			return resp.Kvs[0].Value, nil
		},
		func(val []byte) error {
			_, err := c.Put(ctx, key, string(val))
			return err
		})
}

// BenchmarkUpdateVsBaseline: Store's conditional Update against the plain
// client's Get then Put, on the same cluster, in alternation (see
// benchratio).
func BenchmarkUpdateVsBaseline(b *testing.B) {
	ctx := context.Background()
	c := plainClient(b)
	key := uniquePrefix() + "baseline"
	b.Cleanup(func() { c.Delete(ctx, key) })
	benchratio.UpdateVsBaseline(b, openAdapterB(b, prefixed(b)),
		func() ([]byte, error) {
			resp, err := c.Get(ctx, key)
			if err != nil || len(resp.Kvs) == 0 {
				return nil, err
			}
			return resp.Kvs[0].Value, nil
		},
		func(val []byte) error {
			_, err := c.Put(ctx, key, string(val))
			return err
		})
}

// BenchmarkBaselineContended8 is the plain client's Get then Put with 8
// goroutines on one key, beside BenchmarkStore's UpdateContended8: the
// plain client loses updates under contention, the adapter retries them.
func BenchmarkBaselineContended8(b *testing.B) {
	ctx := context.Background()
	c := plainClient(b)
	key := uniquePrefix() + "baseline"
	b.Cleanup(func() { c.Delete(ctx, key) })
	val, err := storage.EncodeRecord(drivertest.SampleRecord("bench"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Put(ctx, key, string(val)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((8 + procs - 1) / procs)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(ctx, key)
			if err != nil || len(resp.Kvs) == 0 {
				b.Error(err)
				return
			}
			if _, err := c.Put(ctx, key, string(resp.Kvs[0].Value)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkWake measures how soon a waiter learns of another client's
// write: "watch" through the Adapter's Watcher, "poll" through Store.Wait
// over an adapter that hides it, which sleeps about the storm's 20 ms poll
// interval and re-reads. wake-µs is from the start of the write to the
// waiter's return (the write's own round trip included).
func BenchmarkWake(b *testing.B) {
	u := prefixed(b)
	for _, bm := range []struct {
		name  string
		watch bool
	}{{"watch", true}, {"poll", false}} {
		b.Run(bm.name, func(b *testing.B) {
			ctx := context.Background()
			waiterAdapter := openAdapterB(b, u)
			if !bm.watch {
				waiterAdapter = hidden{waiterAdapter}
			}
			waiter := storage.NewStore(waiterAdapter)
			writer := openAdapterB(b, u)
			b.Cleanup(func() { waiter.Close(); writer.Close() })
			key := "wake-" + bm.name
			rev, err := writer.Put(ctx, key, []byte(`{"n":0}`), driver.Condition{})
			if err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			for b.Loop() {
				woke := make(chan time.Time, 1)
				from := rev
				go func() {
					for {
						if err := waiter.Wait(ctx, key, from, 20*time.Millisecond); err != nil {
							b.Error(err)
							woke <- time.Time{}
							return
						}
						_, cur, err := waiter.Adapter().Get(ctx, key)
						if err != nil {
							b.Error(err)
						}
						if cur != from {
							woke <- time.Now()
							return
						}
					}
				}()
				time.Sleep(30 * time.Millisecond) // the waiter is waiting
				began := time.Now()
				rev, err = writer.Put(ctx, key, []byte(`{"n":1}`), driver.IfMatch(rev))
				if err != nil {
					b.Fatal(err)
				}
				total += (<-woke).Sub(began)
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "wake-µs/op")
		})
	}
}

// hidden is an adapter without its Watcher, so Store.Wait polls.
type hidden struct{ driver.Adapter }

// ExampleNew hands the adapter a client the application already has.
func ExampleNew() {
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
	if err != nil {
		return
	}
	defer client.Close()
	st := storage.NewStore(must(etcd.New(client, &etcd.Options{Prefix: "myapp/tokens/"})))
	defer st.Close()
	_, _, _ = st.Load(context.Background(), "default")
}

// Example_open picks the adapter from configuration: three members,
// profiles under "tc/", TLS with the cluster's CA.
func Example_open() {
	st, err := storage.Open(context.Background(),
		"etcds://tokencache:PASSWORD@10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379/tc/?ca_file=/etc/etcd/ca.pem")
	if err != nil {
		return
	}
	defer st.Close()
}
