package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokencache/tokencache/integration/internal/benchratio"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/postgres"
)

func openAdapterB(b *testing.B, u string) driver.Adapter {
	a, err := driver.Open(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkStore(b *testing.B) {
	u := storeURL(b)
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return openAdapterB(b, u) })
}

// BenchmarkAdapter is Store's Load and Update without the record codec.
// Against BenchmarkBaseline it shows what the adapter alone adds to the
// plain pool's round trips.
func BenchmarkAdapter(b *testing.B) {
	u := storeURL(b)
	drivertest.AdapterBenchmark(b, func(b *testing.B) driver.Adapter { return openAdapterB(b, u) })
}

// BenchmarkBaseline does with a bare pgx pool the round trips that
// BenchmarkStore's Load and Update stand for: a SELECT, and a SELECT then
// an unconditional UPDATE, on a table of the same shape. The gap to
// BenchmarkAdapter is what the revision, the condition and pg_notify cost.
func BenchmarkBaseline(b *testing.B) {
	ctx := context.Background()
	p := plainPool(b)
	t := pgx.Identifier{uniqueTable()}.Sanitize()
	if _, err := p.Exec(ctx, "CREATE TABLE "+t+" (key text PRIMARY KEY, value bytea NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Exec(ctx, "DROP TABLE "+t) })
	drivertest.Baseline(b,
		func() ([]byte, error) {
			var v []byte
			err := p.QueryRow(ctx, "SELECT value FROM "+t+" WHERE key = 'baseline'").Scan(&v)
			return v, err
		},
		func(val []byte) error {
			// An UPDATE, as the adapter's conditional write is, and an
			// INSERT the first time.
			tag, err := p.Exec(ctx, "UPDATE "+t+" SET value = $1 WHERE key = 'baseline'", val)
			if err == nil && tag.RowsAffected() == 0 {
				_, err = p.Exec(ctx, "INSERT INTO "+t+" (key, value) VALUES ('baseline', $1)", val)
			}
			return err
		})
}

// BenchmarkUpdateVsBaseline: Store's conditional Update against the plain
// pool's SELECT then UPDATE, on the same server, in alternation (see
// benchratio).
func BenchmarkUpdateVsBaseline(b *testing.B) {
	ctx := context.Background()
	p := plainPool(b)
	t := pgx.Identifier{uniqueTable()}.Sanitize()
	if _, err := p.Exec(ctx, "CREATE TABLE "+t+" (key text PRIMARY KEY, value bytea NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Exec(ctx, "DROP TABLE "+t) })
	benchratio.UpdateVsBaseline(b, openAdapterB(b, storeURL(b)),
		func() ([]byte, error) {
			var v []byte
			err := p.QueryRow(ctx, "SELECT value FROM "+t+" WHERE key = 'baseline'").Scan(&v)
			return v, err
		},
		func(val []byte) error {
			tag, err := p.Exec(ctx, "UPDATE "+t+" SET value = $1 WHERE key = 'baseline'", val)
			if err == nil && tag.RowsAffected() == 0 {
				_, err = p.Exec(ctx, "INSERT INTO "+t+" (key, value) VALUES ('baseline', $1)", val)
			}
			return err
		})
}

// pollOnly hides the adapter's Watcher, so that a Store over it polls.
type pollOnly struct{ driver.Adapter }

// BenchmarkWake measures how long a waiting replica takes to see another
// replica's write: from the start of the write until the waiter has re-read
// the new revision. "Listen" wakes on NOTIFY; "Poll" is what a store
// without a Watcher does, sleeping credentials' default poll interval
// (100 ms, jittered to 50-100 ms) between reads. The ratio is what
// LISTEN/NOTIFY saves a waiter.
func BenchmarkWake(b *testing.B) {
	u := storeURL(b)
	for _, bm := range []struct {
		name string
		wrap func(driver.Adapter) driver.Adapter
	}{
		{"Listen", func(a driver.Adapter) driver.Adapter { return a }},
		{"Poll", func(a driver.Adapter) driver.Adapter { return pollOnly{a} }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			ctx := context.Background()
			waiter := storage.NewStore(bm.wrap(openAdapterB(b, u)))
			defer waiter.Close()
			writer := openAdapterB(b, u)
			defer writer.Close()
			key := "wake-" + bm.name
			rev, err := writer.Put(ctx, key, []byte(`{"n":0}`), driver.Condition{})
			if err != nil {
				b.Fatal(err)
			}
			// One Wait first, so the listening connection exists.
			if err := waiter.Wait(ctx, key, "stale", 100*time.Millisecond); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				b.StopTimer()
				seen := make(chan error, 1)
				go func(old driver.Revision) {
					for {
						if err := waiter.Wait(ctx, key, old, 100*time.Millisecond); err != nil {
							seen <- err
							return
						}
						_, cur, err := waiter.Adapter().Get(ctx, key)
						if err != nil || cur != old {
							seen <- err
							return
						}
					}
				}(rev)
				// Let the waiter reach its sleep, as a replica waiting on a
				// lease holder would be.
				time.Sleep(5 * time.Millisecond)
				b.StartTimer()
				rev, err = writer.Put(ctx, key, []byte(`{"n":1}`), driver.IfMatch(rev))
				if err != nil {
					b.Fatal(err)
				}
				if err := <-seen; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ExampleNew hands the adapter a pool the application already has.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db.example.com/app?sslmode=verify-full")
	if err != nil {
		return
	}
	defer pool.Close()
	a, err := postgres.New(pool, &postgres.Options{Table: "oauth_tokens"})
	if err != nil {
		return
	}
	st := storage.NewStore(a)
	defer st.Close()
	_, _, _ = st.Load(ctx, "default")
}

// Example_open picks the adapter from configuration.
func Example_open() {
	st, err := storage.Open(context.Background(),
		"postgres://app:PASSWORD@db.example.com:5432/app?sslmode=verify-full&pool_max_conns=8&table=oauth_tokens")
	if err != nil {
		return
	}
	defer st.Close()
}
