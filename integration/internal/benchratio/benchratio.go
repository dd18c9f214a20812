// Package benchratio times a Store's conditional Update against a plain
// client's read-then-write on the same server, in alternation: one of each
// per iteration, after a warm-up. Run one after the other (BenchmarkStore,
// then BenchmarkBaseline) the two meet whatever load a shared machine has
// at the time, and a server warmed up differently (dynalite's JavaScript
// is compiled as it runs); alternating puts both under the same, so their
// ratio holds where the absolute figures do not.
package benchratio

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
)

// UpdateVsBaseline reports, beside the usual figures, "x-baseline": the
// mean time of Store.Update (a read and a conditional write) on a over
// the mean time of get then set, the plain client reading one key and
// writing back what it read, unconditionally; and "update-ns" and
// "baseline-ns", the two means. set must also create the key. Both sides
// handle a record of the size drivertest.Benchmark uses.
func UpdateVsBaseline(b *testing.B, a driver.Adapter, get func() ([]byte, error), set func([]byte) error) {
	ctx := context.Background()
	st := storage.NewStore(a)
	b.Cleanup(func() { st.Close() })
	profile := "ratio-store"
	if _, _, err := st.Update(ctx, profile, func(r *storage.Record) error {
		*r = *drivertest.SampleRecord(profile)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	val, err := storage.EncodeRecord(drivertest.SampleRecord(profile))
	if err != nil {
		b.Fatal(err)
	}
	if err := set(val); err != nil {
		b.Fatal(err)
	}
	bump := func(r *storage.Record) error {
		r.AccessToken += "x"
		if len(r.AccessToken) > 600 {
			r.AccessToken = r.AccessToken[:500]
		}
		return nil
	}
	update := func() error {
		_, _, err := st.Update(ctx, profile, bump)
		return err
	}
	baseline := func() error {
		v, err := get()
		if err != nil {
			return err
		}
		if len(v) == 0 {
			return errors.New("benchratio: the baseline read nothing")
		}
		return set(v)
	}
	// Warm both paths (connections, prepared statements, the server's
	// caches and compiler) before timing.
	for range 50 {
		if err := errors.Join(update(), baseline()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var tUpdate, tBase time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := update(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := baseline(); err != nil {
			b.Fatal(err)
		}
		tUpdate += t1.Sub(t0)
		tBase += time.Since(t1)
	}
	b.ReportMetric(float64(tUpdate)/float64(tBase), "x-baseline")
	b.ReportMetric(float64(tUpdate.Nanoseconds())/float64(b.N), "update-ns")
	b.ReportMetric(float64(tBase.Nanoseconds())/float64(b.N), "baseline-ns")
}
