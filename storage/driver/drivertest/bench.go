package drivertest

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// Benchmark measures what the refresh protocol does with a store: Load of a
// typical record, a conditional Update, and Update contended by 8
// goroutines on one profile. Adapters call it from their own benchmarks:
//
//	func BenchmarkStore(b *testing.B) { drivertest.Benchmark(b, open) }
func Benchmark(b *testing.B, open func(b *testing.B) driver.Adapter) {
	ctx := context.Background()
	st := storage.NewStore(open(b))
	b.Cleanup(func() { st.Close() })
	profile := randomPrefix() + "bench"
	if _, _, err := st.Update(ctx, profile, func(r *storage.Record) error {
		*r = *SampleRecord(profile)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("Load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := st.Load(ctx, profile); err != nil {
				b.Fatal(err)
			}
		}
	})
	bump := func(r *storage.Record) error {
		r.AccessToken += "x"
		if len(r.AccessToken) > 600 {
			r.AccessToken = r.AccessToken[:500]
		}
		return nil
	}
	b.Run("Update", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := st.Update(ctx, profile, bump); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpdateContended8", func(b *testing.B) {
		b.ReportAllocs()
		// RunParallel starts parallelism x GOMAXPROCS goroutines; ask for 8.
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((8 + procs - 1) / procs)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := st.Update(ctx, profile, bump); err != nil && !errors.Is(err, context.Canceled) {
					b.Error(err)
					return
				}
			}
		})
	})
}

// SampleRecord is a record of realistic size: a JWT-sized access token and
// the pancloud credential fields.
func SampleRecord(profile string) *storage.Record {
	return &storage.Record{
		Profile:      profile,
		ClientID:     "client-0123456789abcdef",
		ClientSecret: secret.Secret("s3cr3t-0123456789abcdef0123456789abcdef"),
		RefreshToken: secret.Secret("rt-0123456789abcdef0123456789abcdef0123456789abcdef"),
		AccessToken:  secret.Secret("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbGllbnQiLCJleHAiOjE5MDAwMDAwMDB9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"),
		TokenType:    "Bearer",
		TokenURL:     "https://auth.example.com/oauth2/token",
	}
}
