package credentials_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/oauth2"
)

// BenchmarkCachedToken compares the cached path of Token with
// x/oauth2's ReuseTokenSource, the usual in-process cache, on the same
// machine in the same run. Both hold a valid token; neither refreshes.
// tokencache-otel-sdk is the cached path with the OpenTelemetry SDK
// installed (a meter provider with a reader, a tracer provider recording
// every span): it must stay within 1.1x of the atomic-pointer baseline.
func BenchmarkCachedToken(b *testing.B) {
	srv := credentialstest.NewServer(b, credentialstest.StormOptions{TTL: time.Hour, Latency: time.Millisecond})
	ctx := context.Background()

	for _, sdk := range []bool{false, true} {
		name := "tokencache"
		if sdk {
			name = "tokencache-otel-sdk"
		}
		b.Run(name, func(b *testing.B) { benchCached(b, srv, sdk) })
	}
	b.Run("x-oauth2-ReuseTokenSource", func(b *testing.B) {
		conf := &oauth2.Config{ClientID: "storm-client", ClientSecret: "storm-secret", Endpoint: srv.Endpoint()}
		ts := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: srv.IssueRefreshToken("storm-client")})
		if _, err := ts.Token(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := ts.Token(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("atomic-pointer-baseline", func(b *testing.B) {
		var p atomic.Pointer[credentials.Token]
		p.Store(&credentials.Token{AccessToken: "x", Expiry: time.Now().Add(time.Hour)})
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !p.Load().Valid(time.Now()) {
					b.Error("invalid")
					return
				}
			}
		})
	})
}

func benchCached(b *testing.B, srv *oauthtest.Server, sdk bool) {
	ctx := context.Background()
	st := storage.NewStore(memory.New())
	cfg := credentials.Config{Store: st, Profile: "p"}
	var reader *sdkmetric.ManualReader
	if sdk {
		reader = sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
		b.Cleanup(func() { mp.Shutdown(ctx); tp.Shutdown(ctx) })
		cfg.MeterProvider, cfg.TracerProvider = mp, tp
	}
	credentialstest.Seed(b, st, "p", srv)
	c, err := credentials.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Token(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Token(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if sdk {
		// The hits reach the SDK: every call was counted.
		if got := memoryHits(b, reader); got < int64(b.N) {
			b.Fatalf("%d memory hits recorded for %d calls", got, b.N)
		}
	}
}

// BenchmarkStorm runs a small storm (4 replicas x 50 goroutines, 3
// expiries of 1 s tokens) per iteration and reports token endpoint calls
// per expiry, which must be 1.
func BenchmarkStorm(b *testing.B) {
	const expiries = 3
	var refreshes int64
	for b.Loop() {
		name := b.Name() + time.Now().String()
		res := credentialstest.Storm(b, func(testing.TB) *storage.Store { return storage.NewStore(memory.Shared(name)) },
			credentialstest.StormOptions{Replicas: 4, Goroutines: 50, Expiries: expiries, TTL: time.Second, Latency: 50 * time.Millisecond})
		refreshes += res.Stats.RefreshCalls
	}
	b.ReportMetric(float64(refreshes)/float64(b.N*expiries), "calls/expiry")
}
