package credentials_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// countingAdapter counts the store operations of one replica.
type countingAdapter struct {
	*memory.Adapter
	ops atomic.Int64
}

func (c *countingAdapter) Get(ctx context.Context, k string) ([]byte, storage.Revision, error) {
	c.ops.Add(1)
	return c.Adapter.Get(ctx, k)
}

func (c *countingAdapter) Put(ctx context.Context, k string, v []byte, cond storage.Condition) (storage.Revision, error) {
	c.ops.Add(1)
	return c.Adapter.Put(ctx, k, v, cond)
}

func (c *countingAdapter) Wait(ctx context.Context, k string, rev storage.Revision) error {
	c.ops.Add(1)
	return c.Adapter.Wait(ctx, k, rev)
}

// Close leaves the shared adapter open: the other replicas still use it.
func (c *countingAdapter) Close() error { return nil }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkBurst is the many-profiles scale run (issue 19): P profiles whose
// tokens were issued together, R replicas (each a Profiles on its own store
// connection, calling Token for every profile in turn), E token lifetimes,
// against a token endpoint that answers 429 with Retry-After beyond a rate
// limit. It reports endpoint calls per profile per lifetime, the burst
// factor (the most calls in any second over the mean rate), 429s, store
// operations per replica per profile per lifetime, Token's p99 beside an
// atomic-pointer baseline's in the same run, and heap per cached profile.
//
//	TOKENCACHE_BURST_PROFILES=10000 go test -run '^$' -bench Burst -benchtime 1x ./credentials/
//
// TOKENCACHE_BURST_{PROFILES,REPLICAS,LIFETIME_S,LIFETIMES} set P (1000),
// R (8), the lifetime in seconds (6) and E (3).
func BenchmarkBurst(b *testing.B) {
	P := envInt("TOKENCACHE_BURST_PROFILES", 1000)
	R := envInt("TOKENCACHE_BURST_REPLICAS", 8)
	L := time.Duration(envInt("TOKENCACHE_BURST_LIFETIME_S", 6)) * time.Second
	E := envInt("TOKENCACHE_BURST_LIFETIMES", 3)
	ctx := context.Background()

	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true, AccessTTL: L})
	defer srv.Close()
	srv.AddClient("burst", "burst-secret")
	// The endpoint the replicas see: counts calls per second, and beyond
	// twice the mean rate a fleet needs answers 429 with Retry-After.
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	limit := atomic.Int64{}
	limit.Store(1 << 30) // none while the profiles are seeded
	var mu sync.Mutex
	perSecond := map[int64]int{}
	var throttled atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sec := time.Now().Unix()
		mu.Lock()
		over := int64(perSecond[sec]) >= limit.Load()
		if !over {
			perSecond[sec]++
		}
		mu.Unlock()
		if over {
			throttled.Add(1)
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":"slow_down"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	shared := memory.New()
	names := make([]string, P)
	seedStore := storage.NewStore(&countingAdapter{Adapter: shared})
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%05d", i)
		rec := &storage.Record{Profile: names[i], ClientID: "burst", ClientSecret: "burst-secret", TokenURL: front.URL + "/oauth2/token"}
		rec.Grant(srv.IssueRefreshToken("burst"))
		if _, err := seedStore.Replace(ctx, nil, "", rec); err != nil {
			b.Fatal(err)
		}
	}
	cfg := func(st *storage.Store) credentials.Config {
		return credentials.Config{Store: st, Skew: L / 10, RenewAhead: L / 2, RenewSpread: 1,
			LeaseTTL: 5 * time.Second, PollInterval: 50 * time.Millisecond, RetryBackoff: 50 * time.Millisecond}
	}
	// Issued together: one process fetches every profile's first token.
	seeder, _ := credentials.NewProfiles(cfg(seedStore))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := i; j < P; j += 16 {
				if _, err := seeder.Token(ctx, names[j]); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	seeder.Close()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	replicas := make([]*credentials.Profiles, R)
	adapters := make([]*countingAdapter, R)
	for i := range replicas {
		adapters[i] = &countingAdapter{Adapter: shared}
		replicas[i], _ = credentials.NewProfiles(cfg(storage.NewStore(adapters[i])))
		for _, n := range names {
			if _, err := replicas[i].Token(ctx, n); err != nil {
				b.Fatal(err)
			}
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	for _, a := range adapters {
		a.ops.Store(0)
	}
	srv.ResetStats()
	mu.Lock()
	clear(perSecond)
	mu.Unlock()
	limit.Store(int64(2 * P * int(time.Second) / int(L)))

	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(time.Duration(E) * L)
	// The baseline, timed in the same goroutines under the same load: an
	// atomic pointer load and expiry check, right after each sampled call.
	var ptr atomic.Pointer[credentials.Token]
	ptr.Store(&credentials.Token{AccessToken: "x", Expiry: time.Now().Add(time.Hour)})
	lat, base := make([][]time.Duration, R), make([][]time.Duration, R)
	var failed atomic.Int64
	for i, p := range replicas {
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				for j, name := range names {
					sample := (j+n)%64 == 0
					t0 := time.Now()
					if _, err := p.Token(ctx, name); err != nil {
						failed.Add(1)
					}
					if sample {
						lat[i] = append(lat[i], time.Since(t0))
						t0 = time.Now()
						if !ptr.Load().Valid(t0) {
							failed.Add(1)
						}
						base[i] = append(base[i], time.Since(t0))
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	var all, baseAll []time.Duration
	for i := range lat {
		all = append(all, lat[i]...)
		baseAll = append(baseAll, base[i]...)
	}
	p99 := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)*99/100]
	}
	p50 := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}

	stats := srv.Stats()
	mu.Lock()
	busiest := 0
	for _, n := range perSecond {
		busiest = max(busiest, n)
	}
	mu.Unlock()
	var ops int64
	for _, a := range adapters {
		ops += a.ops.Load()
	}
	lifetimes := float64(elapsed) / float64(L)
	mean := float64(stats.RefreshCalls) / elapsed.Seconds()
	b.ReportMetric(float64(stats.RefreshCalls)/(float64(P)*lifetimes), "calls/profile/lifetime")
	b.ReportMetric(float64(busiest)/mean, "burst-factor")
	b.ReportMetric(float64(throttled.Load()), "429s")
	b.ReportMetric(float64(stats.ReuseDetections), "reuse")
	b.ReportMetric(float64(failed.Load()), "failed-calls")
	b.ReportMetric(float64(ops)/(float64(R)*float64(P)*lifetimes), "store-ops/replica/profile/lifetime")
	b.ReportMetric(float64(p99(all)), "token-p99-ns")
	b.ReportMetric(float64(p99(baseAll)), "baseline-p99-ns")
	b.ReportMetric(float64(p50(all)), "token-p50-ns")
	b.ReportMetric(float64(p50(baseAll)), "baseline-p50-ns")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(P*R), "heap-B/cached-profile")
	for _, p := range replicas {
		p.Close()
	}
}
