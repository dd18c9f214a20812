package credentialstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// BurstOptions shape a Burst run. Zero fields take the defaults in brackets.
type BurstOptions struct {
	Profiles  int           // P, issued together [1000]
	Replicas  int           // R, each a Profiles on its own store connection [8]
	Lifetime  time.Duration // of an access token [6s]
	Lifetimes int           // E, how long the run lasts [3]
}

func (o *BurstOptions) defaults() {
	if o.Profiles <= 0 {
		o.Profiles = 1000
	}
	if o.Replicas <= 0 {
		o.Replicas = 8
	}
	if o.Lifetime <= 0 {
		o.Lifetime = 6 * time.Second
	}
	if o.Lifetimes <= 0 {
		o.Lifetimes = 3
	}
}

// BurstResult is what a Burst run measured.
type BurstResult struct {
	CallsPerProfileLifetime float64 // endpoint refresh calls per profile per lifetime: 1 is ideal
	BurstFactor             float64 // the most calls in any second over the run's mean rate
	Throttled               int64   // 429s the endpoint answered
	// A renewal is one refresh token presented to the endpoint until it
	// is spent. The endpoint's limit is no reason to ask more than once
	// per pause: ThrottledMaxPerRenewal is the most 429s one renewal got
	// (1 is the target), ThrottledTwice how many renewals got two or
	// more, of ThrottledRenewals that got any. RetriesPer429 is the calls
	// that presented a refresh token after its first 429, over the 429s:
	// a renewal that keeps one replica at a time at the endpoint (its
	// lease) makes at most one call per 429 it got, so above 1 means two
	// replicas presented the same token after a 429.
	ThrottledMaxPerRenewal, ThrottledTwice, ThrottledRenewals int
	RetriesPer429                                             float64
	Reuse                                                     int64 // spent refresh tokens presented again: must be 0
	Abandoned                                                 int64 // endpoint calls the client gave up on (timeout, Close)
	LostReplies                                               int64 // answers lost between the server and the client, in the harness
	FailedCalls                                               int64 // Token calls that returned an error
	// ExtraRefreshes counts rotations of a profile's grant less than
	// 0.45 lifetime after its previous one. No renewal is due before half
	// a lifetime (a token is renewed at most RenewAhead, half its life,
	// before it expires; the rest is slack for a loaded machine), so each
	// is a second call where one was due: 0 means one endpoint call per
	// profile per renewal. CallsPerProfileLifetime is above 1 all the
	// same, as tokens are renewed ahead of expiry.
	ExtraRefreshes int

	// Store operations per replica per profile per lifetime: every
	// Adapter call a replica made (Get, Put, Delete, List, a Watcher's
	// Wait) and the subscriptions it opened (KeyWatcher.WatchKeys).
	StoreOps, Gets, Puts, Waits float64
	// PutConflictsPerRefresh counts the conditional writes that lost a
	// race (all replicas together, per endpoint refresh): a lease taken by
	// another replica between a read and the take, mostly.
	PutConflictsPerRefresh float64
	// StoreOpsPerRefresh is StoreOps per endpoint refresh instead of per
	// lifetime of wall time: a profile renewed early is renewed more often
	// than once a lifetime, and every renewal costs each replica its reads.
	StoreOpsPerRefresh float64
	Subscriptions      int64 // opened by all replicas together

	// Token's latency between refreshes (the calls that returned the token
	// the previous call for that profile did), per call, beside the baseline's
	// in the same goroutines: a map from profile name to an atomic pointer
	// to its token, read with a clock read and an expiry check, which is
	// the least a cache of P profiles can do. TimerP99 is the timing's own
	// cost (an empty interval), included in both.
	TokenP50, TokenP99, TokenP999, BaseP50, BaseP99, BaseP999, TimerP99 time.Duration
	// WaitedSamples is the share of sampled calls that got a new token,
	// which the figures above leave out: they may have waited for a
	// refresh (their cost is the store's and the endpoint's).
	WaitedSamples float64

	// HeapPerProfile is the live heap a cached profile costs one replica:
	// the growth from caching the second half of the profiles, so that
	// what a replica pays once (its store connection's buffers, a watch
	// subscription) is not spread over the profiles. HeapPerProfileAll
	// is the growth from caching all of them, fixed costs included.
	HeapPerProfile, HeapPerProfileAll float64
}

// countingAdapter counts one replica's store operations. It forwards the
// watch capabilities of the adapter it wraps, and reports
// errors.ErrUnsupported where that has none.
type countingAdapter struct {
	driver.Adapter
	gets, puts, others, waits, subs, conflicts atomic.Int64
}

func (c *countingAdapter) Get(ctx context.Context, k string) ([]byte, storage.Revision, error) {
	c.gets.Add(1)
	return c.Adapter.Get(ctx, k)
}

func (c *countingAdapter) Put(ctx context.Context, k string, v []byte, cond driver.Condition) (storage.Revision, error) {
	c.puts.Add(1)
	rev, err := c.Adapter.Put(ctx, k, v, cond)
	if errors.Is(err, storage.ErrConflict) {
		c.conflicts.Add(1)
	}
	return rev, err
}

func (c *countingAdapter) Delete(ctx context.Context, k string, cond driver.Condition) error {
	c.others.Add(1)
	return c.Adapter.Delete(ctx, k, cond)
}

func (c *countingAdapter) List(ctx context.Context) ([]string, error) {
	c.others.Add(1)
	return c.Adapter.List(ctx)
}

func (c *countingAdapter) Wait(ctx context.Context, k string, rev storage.Revision) error {
	w, ok := c.Adapter.(driver.Watcher)
	if !ok {
		return errors.ErrUnsupported
	}
	c.waits.Add(1)
	return w.Wait(ctx, k, rev)
}

func (c *countingAdapter) WatchKeys(ctx context.Context, changed func(string)) (driver.KeySubscription, error) {
	kw, ok := c.Adapter.(driver.KeyWatcher)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	sub, err := kw.WatchKeys(ctx, changed)
	if err == nil {
		c.subs.Add(1)
	}
	return sub, err
}

func (c *countingAdapter) reset() {
	c.gets.Store(0)
	c.puts.Store(0)
	c.others.Store(0)
	c.waits.Store(0)
	c.subs.Store(0)
	c.conflicts.Store(0)
}

// Burst is the many-profiles scale run: P profiles whose tokens were
// issued together, R replicas (each a Profiles on its own adapter from
// open, calling Token for every profile in turn, 20 ms apart), for E
// token lifetimes, against a token endpoint that answers 429 with
// Retry-After beyond twice the mean rate the fleet needs. It reports the
// result on b as metrics and returns it.
//
// open is called once per replica and once for seeding; every adapter it
// returns must reach the same data, as separate processes' connections
// would. Burst closes them.
func Burst(b *testing.B, open func() (driver.Adapter, error), o BurstOptions) BurstResult {
	o.defaults()
	P, R, L, E := o.Profiles, o.Replicas, o.Lifetime, o.Lifetimes
	ctx := context.Background()

	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true, AccessTTL: L})
	defer srv.Close()
	srv.AddClient("burst", "burst-secret")
	// The endpoint the replicas see: counts calls per second, and beyond
	// its limit answers 429 with Retry-After. It forwards the others to
	// the server over its own connections and reads the whole answer
	// before it answers, so that a reply lost on this hop (counted as
	// lostReplies: the server rotated, the client never learnt of it, and
	// its retry is reuse) is told apart from the library's doing.
	backend := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer backend.CloseIdleConnections()
	var limit atomic.Int64
	limit.Store(1 << 30) // none while the profiles are seeded
	var mu sync.Mutex
	perSecond := map[int64]int{}      // calls answered (not 429), by second
	throttledAt := map[int64]int{}    // calls answered 429, by second
	renewals := map[string]*renewal{} // by the refresh token presented
	var throttled, abandoned, lostReplies atomic.Int64
	var slowest atomic.Int64 // the longest a refresh took at the endpoint, ns
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		presented := ""
		if form, err := url.ParseQuery(string(body)); err == nil {
			presented = form.Get("refresh_token")
		}
		sec := time.Now().Unix()
		mu.Lock()
		over := int64(perSecond[sec]) >= limit.Load()
		if over {
			throttledAt[sec]++
		} else {
			perSecond[sec]++
		}
		if presented != "" {
			rn := renewals[presented]
			if rn == nil {
				rn = &renewal{}
				renewals[presented] = rn
			}
			if rn.throttled > 0 {
				rn.afterThrottled++
			}
			if over {
				rn.throttled++
			}
			rn.calls = append(rn.calls, renewalCall{at: time.Now(), throttled: over})
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
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, srv.URL+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := backend.Do(req)
		var answer []byte
		if err == nil {
			answer, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if d := time.Since(t0); d > time.Duration(slowest.Load()) {
			slowest.Store(int64(d))
		}
		if r.Context().Err() != nil {
			// The client gave up (RefreshTimeout, Close) on a call the
			// server may have answered: a rotation it never learnt of.
			abandoned.Add(1)
			return
		}
		if err != nil {
			lostReplies.Add(1)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	}))
	defer front.Close()

	connect := func() *countingAdapter {
		a, err := open()
		if err != nil {
			b.Fatal(err)
		}
		return &countingAdapter{Adapter: a}
	}
	seedStart := time.Now()
	names := make([]string, P)
	seedStore := storage.NewStore(connect())
	defer seedStore.Close() // after the seeder's Close: the caller owns a store
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
			// An endpoint call that outlasts RefreshTimeout may have rotated
			// the token all the same, and its retry is then reuse: on a
			// loaded machine a slow call must not be mistaken for a lost one.
			LeaseTTL: 30 * time.Second, RefreshTimeout: 10 * time.Second, PollInterval: 50 * time.Millisecond, RetryBackoff: 50 * time.Millisecond}
	}
	// Issued together: one process fetches every profile's first token.
	seeder, err := credentials.NewProfiles(cfg(seedStore))
	if err != nil {
		b.Fatal(err)
	}
	defer seeder.Close()
	var setupErrs atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := i; j < P; j += 16 {
				if _, err := seeder.Token(ctx, names[j]); err != nil {
					if setupErrs.Add(1) <= 5 {
						b.Log("seeding:", err)
					}
				}
			}
		})
	}
	wg.Wait()
	seeder.Close()
	b.Logf("seeded %d profiles in %v: %d refresh calls, %d reuse, %d abandoned, %d lost replies, slowest %v",
		P, time.Since(seedStart).Round(time.Millisecond), srv.Stats().RefreshCalls, srv.Stats().ReuseDetections,
		abandoned.Load(), lostReplies.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	replicas := make([]*credentials.Profiles, R)
	stores := make([]*storage.Store, R)
	adapters := make([]*countingAdapter, R)
	// Before the servers' Close (deferred earlier, so run later), which
	// waits for the replicas' calls in flight; each store after its
	// replica.
	defer func() {
		for i, p := range replicas {
			if p != nil {
				p.Close()
			}
			if stores[i] != nil {
				stores[i].Close()
			}
		}
	}()
	cache := func(i int, names []string) {
		for _, n := range names {
			if _, err := replicas[i].Token(ctx, n); err != nil {
				if setupErrs.Add(1) <= 5 {
					b.Log("caching:", err)
				}
			}
		}
	}
	for i := range replicas {
		adapters[i] = connect()
		stores[i] = storage.NewStore(adapters[i])
		replicas[i], err = credentials.NewProfiles(cfg(stores[i]))
		if err != nil {
			b.Fatal(err)
		}
		cache(i, names[:P/2])
	}
	runtime.GC()
	var half runtime.MemStats
	runtime.ReadMemStats(&half)
	for i := range replicas {
		cache(i, names[P/2:])
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	// The baseline: the same names, each mapped to an atomic pointer to a
	// token of its own, so that it reaches as much memory per call.
	baseline := make(map[string]*atomic.Pointer[credentials.Token], P)
	for _, n := range names {
		p := new(atomic.Pointer[credentials.Token])
		p.Store(&credentials.Token{AccessToken: "x", Expiry: time.Now().Add(time.Hour)})
		baseline[n] = p
	}

	b.Logf("cached on %d replicas: %d reuse, %d abandoned, %d lost replies, %d errors",
		R, srv.Stats().ReuseDetections, abandoned.Load(), lostReplies.Load(), setupErrs.Load())
	for _, a := range adapters {
		a.reset()
	}
	srv.ResetStats()
	abandoned.Store(0)
	lostReplies.Store(0)
	slowest.Store(0)
	mu.Lock()
	clear(perSecond)
	clear(throttledAt)
	clear(renewals)
	mu.Unlock()
	limit.Store(int64(2 * P * int(time.Second) / int(L)))

	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(time.Duration(E) * L)
	lat, base, empty := make([][]time.Duration, R), make([][]time.Duration, R), make([][]time.Duration, R)
	waited := make([]int, R) // samples whose call got a new token: it waited for a refresh
	var failed, tokenErrs atomic.Int64
	// logFailure says what failed, for the first few: a Token error, or a
	// baseline token found expired (a renewal that came too late).
	logFailure := func(name string, err error) {
		if err != nil && tokenErrs.Add(1) <= 5 {
			b.Logf("Token(%s) failed: %v", name, err)
		} else if err == nil && failed.Load() <= 5 {
			b.Logf("baseline token of %s expired before its renewal", name)
		}
	}
	for i, p := range replicas {
		last := make([]*credentials.Token, P) // what each profile's previous call got
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				for j, name := range names {
					if (j+n)%64 != 0 {
						tok, err := p.Token(ctx, name)
						if err != nil {
							failed.Add(1)
							logFailure(name, err)
						}
						last[j] = tok
						continue
					}
					// A sample: Token and the baseline timed alike, one
					// after the other, in turns, so that neither always
					// finds the other's cache lines warm.
					var dt, db time.Duration
					var tok *credentials.Token
					timeToken := func() {
						t0 := time.Now()
						t, err := p.Token(ctx, name)
						dt = time.Since(t0)
						if err != nil {
							failed.Add(1)
							logFailure(name, err)
						}
						tok = t
					}
					timeBase := func() {
						t0 := time.Now()
						ok := baseline[name].Load().Valid(time.Now())
						db = time.Since(t0)
						if !ok {
							failed.Add(1)
							logFailure(name, nil)
						}
					}
					if n%2 == 0 {
						timeToken()
						timeBase()
					} else {
						timeBase()
						timeToken()
					}
					t0 := time.Now()
					empty[i] = append(empty[i], time.Since(t0))
					base[i] = append(base[i], db)
					// Between refreshes is when the call returns the token
					// the previous one did; a new one means it may have
					// waited for the store or the endpoint.
					switch {
					case last[j] == nil:
						// The first sweep: nothing to compare with.
					case tok == last[j]:
						lat[i] = append(lat[i], dt)
					default:
						waited[i]++
					}
					last[j] = tok
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	quantile := func(per [][]time.Duration, q float64) time.Duration {
		all := slices.Concat(per...)
		if len(all) == 0 {
			return 0
		}
		slices.Sort(all)
		return all[min(len(all)-1, int(float64(len(all))*q))]
	}
	stats := srv.Stats()
	extra, lastRotation := 0, map[string]time.Time{}
	for _, e := range srv.RefreshLog() {
		if e.Result != oauthtest.ResultRotated {
			continue
		}
		if at, ok := lastRotation[e.Family]; ok && e.At.Sub(at) < L*45/100 {
			extra++
		}
		lastRotation[e.Family] = e.At
	}
	mu.Lock()
	busiest := 0
	secs := slices.Sorted(maps.Keys(perSecond))
	series, series429 := make([]int, 0, len(secs)), make([]int, 0, len(secs))
	for _, s := range secs {
		busiest = max(busiest, perSecond[s])
		series = append(series, perSecond[s])
		series429 = append(series429, throttledAt[s])
	}
	mostPerRenewal, twice, throttledRenewals, retries := 0, 0, 0, 0
	var worst *renewal
	for _, rn := range renewals {
		if rn.throttled > mostPerRenewal {
			mostPerRenewal, worst = rn.throttled, rn
		}
		if rn.throttled > 0 {
			throttledRenewals++
		}
		if rn.throttled > 1 {
			twice++
		}
		retries += rn.afterThrottled
	}
	mu.Unlock()
	// The shape of the renewals: a spike is a burst, a long run at the
	// endpoint's limit is the 429s' doing.
	b.Logf("endpoint calls answered, second by second, limit %d/s: %v", limit.Load(), series)
	b.Logf("endpoint calls answered 429, second by second: %v", series429)
	if worst != nil {
		// When the most throttled renewal's calls went out: a 429 (T) a
		// pause after the last one is the endpoint still full; one inside
		// the pause is a retry that did not wait for it.
		var calls []string
		for _, c := range worst.calls {
			mark := "ok"
			if c.throttled {
				mark = "429"
			}
			calls = append(calls, fmt.Sprintf("%.3fs:%s", c.at.Sub(start).Seconds(), mark))
		}
		b.Logf("the most throttled renewal's calls, from the start of the run: %v", calls)
	}
	var gets, puts, others, waits, subs, conflicts int64
	for _, a := range adapters {
		conflicts += a.conflicts.Load()
		gets += a.gets.Load()
		puts += a.puts.Load()
		others += a.others.Load()
		waits += a.waits.Load()
		subs += a.subs.Load()
	}
	lifetimes := float64(elapsed) / float64(L)
	per := func(n int64) float64 { return float64(n) / (float64(R) * float64(P) * lifetimes) }
	res := BurstResult{
		CallsPerProfileLifetime: float64(stats.RefreshCalls) / (float64(P) * lifetimes),
		BurstFactor:             float64(busiest) / (float64(stats.RefreshCalls) / elapsed.Seconds()),
		Throttled:               throttled.Load(),
		ThrottledMaxPerRenewal:  mostPerRenewal,
		ThrottledTwice:          twice,
		ThrottledRenewals:       throttledRenewals,
		RetriesPer429:           float64(retries) / float64(max(throttled.Load(), 1)),
		Reuse:                   stats.ReuseDetections,
		Abandoned:               abandoned.Load(),
		LostReplies:             lostReplies.Load(),
		FailedCalls:             failed.Load(),
		ExtraRefreshes:          extra,
		StoreOps:                per(gets + puts + others + waits + subs),
		StoreOpsPerRefresh:      float64(gets+puts+others+waits+subs) / (float64(R) * float64(max(stats.RefreshCalls, 1))),
		Gets:                    per(gets),
		Puts:                    per(puts),
		PutConflictsPerRefresh:  float64(conflicts) / float64(max(stats.RefreshCalls, 1)),
		Waits:                   per(waits),
		Subscriptions:           subs,
		TokenP50:                quantile(lat, .5),
		TokenP99:                quantile(lat, .99),
		TokenP999:               quantile(lat, .999),
		BaseP50:                 quantile(base, .5),
		BaseP99:                 quantile(base, .99),
		BaseP999:                quantile(base, .999),
		TimerP99:                quantile(empty, .99),
		WaitedSamples:           float64(sum(waited)) / float64(max(1, sum(waited)+len(slices.Concat(lat...)))),
		HeapPerProfile:          (float64(after.HeapAlloc) - float64(half.HeapAlloc)) / float64((P-P/2)*R),
		HeapPerProfileAll:       (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(P*R),
	}
	b.ReportMetric(res.CallsPerProfileLifetime, "calls/profile/lifetime")
	b.ReportMetric(float64(res.ExtraRefreshes), "extra-refreshes")
	b.ReportMetric(res.BurstFactor, "burst-factor")
	b.ReportMetric(float64(res.Throttled), "429s")
	b.ReportMetric(float64(res.ThrottledMaxPerRenewal), "429s-per-renewal-max")
	b.ReportMetric(float64(res.ThrottledTwice), "renewals-throttled-twice+")
	b.ReportMetric(float64(res.ThrottledRenewals), "renewals-throttled")
	b.ReportMetric(res.RetriesPer429, "retries-per-429")
	b.ReportMetric(float64(res.Reuse), "reuse")
	b.ReportMetric(float64(res.Abandoned), "abandoned-calls")
	b.ReportMetric(float64(res.LostReplies), "lost-replies")
	b.ReportMetric(float64(time.Duration(slowest.Load()).Milliseconds()), "slowest-refresh-ms")
	b.ReportMetric(float64(res.FailedCalls), "failed-calls")
	b.ReportMetric(res.StoreOps, "store-ops/replica/profile/lifetime")
	b.ReportMetric(res.StoreOpsPerRefresh, "store-ops/replica/refresh")
	b.ReportMetric(res.Gets, "gets/replica/profile/lifetime")
	b.ReportMetric(res.Puts, "puts/replica/profile/lifetime")
	b.ReportMetric(res.Waits, "waits/replica/profile/lifetime")
	b.ReportMetric(res.PutConflictsPerRefresh, "put-conflicts/refresh")
	b.ReportMetric(float64(res.Subscriptions)/float64(R), "subscriptions/replica")
	b.ReportMetric(float64(res.TokenP50), "token-p50-ns")
	b.ReportMetric(float64(res.TokenP99), "token-p99-ns")
	b.ReportMetric(float64(res.TokenP999), "token-p99.9-ns")
	b.ReportMetric(float64(res.BaseP50), "baseline-p50-ns")
	b.ReportMetric(float64(res.BaseP99), "baseline-p99-ns")
	b.ReportMetric(float64(res.BaseP999), "baseline-p99.9-ns")
	b.ReportMetric(float64(res.TimerP99), "timer-p99-ns")
	b.ReportMetric(res.WaitedSamples, "samples-with-new-token")
	b.ReportMetric(float64(res.TokenP99)/float64(res.BaseP99), "p99-ratio")
	b.ReportMetric(res.HeapPerProfile, "heap-B/cached-profile")
	b.ReportMetric(res.HeapPerProfileAll, "heap-B/cached-profile-with-fixed")
	return res
}

// renewal is what the endpoint saw of one refresh token.
type renewal struct {
	throttled      int // calls answered 429
	afterThrottled int // calls after the first 429, whatever their answer
	calls          []renewalCall
}

type renewalCall struct {
	at        time.Time
	throttled bool
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
