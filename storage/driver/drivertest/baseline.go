package drivertest

import (
	"context"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// The two helpers below split what Benchmark measures into layers, so that
// an adapter's benchmarks can show where the time goes: AdapterBenchmark
// drops the record codec and the Store, Baseline drops the adapter too and
// times the bare client. Both report the same pair of round trips, a read
// and a read then a write of what was read, on a value of the size
// Benchmark's records encode to.
//
//	func BenchmarkAdapter(b *testing.B)  { drivertest.AdapterBenchmark(b, open) }
//	func BenchmarkBaseline(b *testing.B) { drivertest.Baseline(b, get, set) }

// AdapterBenchmark is Store's Load and Update without the record codec:
// "Get", and "Get+PutIfMatch" on the revision just read. Against Benchmark
// it shows what the Store adds; against Baseline, what the adapter adds.
func AdapterBenchmark(b *testing.B, open func(b *testing.B) driver.Adapter) {
	ctx := context.Background()
	a := open(b)
	b.Cleanup(func() { a.Close() })
	key := randomPrefix() + "bench"
	if _, err := a.Put(ctx, key, sampleValue(b), driver.Condition{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Delete(ctx, key, driver.Condition{}) })
	roundTrips(b,
		"Get", func() error {
			_, _, err := a.Get(ctx, key)
			return err
		},
		"Get+PutIfMatch", func() error {
			v, rev, err := a.Get(ctx, key)
			if err != nil {
				return err
			}
			_, err = a.Put(ctx, key, v, driver.IfMatch(rev))
			return err
		})
}

// Baseline times a bare client doing the round trips that AdapterBenchmark
// times through the adapter: "Get", and "Get+Set" writing back what it read
// with no condition. get and set read and write one key of the caller's
// choosing through the client under test; set also stores the value first,
// and the caller removes the key afterwards. The gap to AdapterBenchmark is
// what the adapter's revisions and conditions cost.
func Baseline(b *testing.B, get func() ([]byte, error), set func(val []byte) error) {
	if err := set(sampleValue(b)); err != nil {
		b.Fatal(err)
	}
	roundTrips(b,
		"Get", func() error {
			_, err := get()
			return err
		},
		"Get+Set", func() error {
			v, err := get()
			if err != nil {
				return err
			}
			return set(v)
		})
}

// roundTrips runs read and readWrite as the two sub-benchmarks named.
func roundTrips(b *testing.B, readName string, read func() error, readWriteName string, readWrite func() error) {
	for _, bm := range []struct {
		name string
		op   func() error
	}{{readName, read}, {readWriteName, readWrite}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bm.op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// sampleValue is SampleRecord encoded: what Store writes for a typical
// profile.
func sampleValue(b *testing.B) []byte {
	val, err := storage.EncodeRecord(SampleRecord("bench"))
	if err != nil {
		b.Fatal(err)
	}
	return val
}
