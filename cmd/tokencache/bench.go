package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

const benchProfile = "tokencache-bench"

// benchPollInterval is how often waiters in replicas that do not hold the
// lease re-read a store that cannot notify (file, SQLite) unless
// --poll-interval says otherwise: it bounds how late they see the
// refresher's write.
const benchPollInterval = 10 * time.Millisecond

type benchOpts struct {
	replicas, goroutines, expiries    int
	ttl, latency, think, pollInterval time.Duration
	json, strict                      bool
}

func (a *app) benchCmd() *cobra.Command {
	o := benchOpts{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure refreshes, reuse detections, Token latency and memory across replica processes, against x/oauth2",
		Long: `Start an OAuth 2.0 test server on 127.0.0.1 (refresh-token rotation with
reuse detection, --ttl access tokens, --latency at the token endpoint) and
run --replicas processes of --goroutines goroutines each calling Token back
to back for --expiries token lifetimes, twice:

  1. tokencache: the replicas share one store (a temporary file store, or
     --store) and use one token per expiry.
  2. x/oauth2: each replica has its own ReuseTokenSource, which refreshes
     for itself. All start from the same refresh token, so with rotation the
     second replica to refresh presents a rotated token: the server detects
     reuse and revokes the grant. The report counts that.

Each call is timed alone into per-goroutine fixed-bucket histograms and
classified: "during a refresh" when it began after the newest token its
process knew had stopped being handed out, or it brought a newer one (it
waited); "between refreshes" otherwise (the cached path). Every replica also
times, in the same process, an atomic.Pointer load plus a clock comparison
through the same harness (the baseline for the cached path), Loads of the
profile from the store (a store round trip), and reports its heap in use
and resident set size at the end. The bench times a token request itself
(the endpoint round trip).

The report ends with targets for tokencache, each PASS or FAIL:
  - exactly one token endpoint call per expiry
  - no reuse detection, and no failed Token call
  - between refreshes, Token p50 at most 2x the atomic.Pointer baseline's
  - during a refresh, waiters' p99 at most the endpoint round trip plus two
    store round trips
The first three are correctness: the exit status is 1 when one fails. The
latency targets depend on how busy the machine is: they are reported, and
fail the run only with --strict.`,
		Args: cobra.NoArgs,
		PreRun: func(cmd *cobra.Command, _ []string) {
			if !cmd.Flag("timeout").Changed {
				a.timeout = 30 * time.Minute
			}
		},
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			o.pollInterval = benchPollInterval
			if cmd.Flag("poll-interval").Changed {
				o.pollInterval = a.tune.pollInterval
			}
			return a.bench(ctx, o, cmd.Flag("store").Changed)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.replicas, "replicas", 4, "replica processes")
	f.IntVar(&o.goroutines, "goroutines", 50, "goroutines calling Token in each replica")
	f.IntVar(&o.expiries, "expiries", 3, "access-token lifetimes each run lasts")
	f.DurationVar(&o.ttl, "ttl", 2*time.Second, "access-token lifetime, whole seconds, at least 2s")
	f.DurationVar(&o.latency, "latency", 100*time.Millisecond, "token endpoint latency")
	f.DurationVar(&o.think, "think", 0, "pause between one goroutine's Token calls (0: back to back)")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	f.BoolVar(&o.strict, "strict", false, "exit 1 when a latency target is missed too")
	return cmd
}

// benchPhase is one way of running the load.
type benchPhase struct {
	name, description string
	mode              string
}

func (a *app) bench(ctx context.Context, o benchOpts, storeGiven bool) error {
	life := o.ttl - demoSkew
	switch {
	case o.replicas < 1 || o.goroutines < 1 || o.expiries < 1:
		return usagef("bench: --replicas, --goroutines and --expiries must be at least 1")
	case o.ttl < 2*time.Second || o.ttl%time.Second != 0:
		return usagef("bench: --ttl must be whole seconds, at least 2s (tokens are used until %s before expiry)", demoSkew)
	case o.latency < 0 || o.latency >= life:
		// A token that arrives already past its use-by time would be
		// refreshed again at once, forever.
		return usagef("bench: --latency must be shorter than a token's useful life (--ttl less %s)", demoSkew)
	case o.think < 0 || o.pollInterval <= 0:
		return usagef("bench: --think must not be negative and --poll-interval must be positive")
	}
	storeURL, cleanup, err := a.replicaStore("bench", storeGiven)
	if err != nil {
		return err
	}
	defer cleanup()
	scheme, _, _ := strings.Cut(storeURL, ":")

	phases := []benchPhase{
		{name: "tokencache", description: "shared " + scheme + " store", mode: modeShared},
		{name: "x/oauth2", description: "per-process ReuseTokenSource", mode: modePrivate},
	}
	rep := benchReport{
		Replicas: o.replicas, Goroutines: o.goroutines, Expiries: o.expiries,
		TTLNs: int64(o.ttl), LatencyNs: int64(o.latency), ThinkNs: int64(o.think), PollIntervalNs: int64(o.pollInterval),
		Store: storage.Redact(storeURL),
	}
	progress := io.Discard
	if !o.json {
		progress = a.stdout
		fmt.Fprintf(a.stdout, "tokencache bench: %d replica processes x %d goroutines calling Token, %d expiries of %s access tokens (used for %s),\n"+
			"token endpoint latency %s, refresh-token rotation with reuse detection, store %s (waiters poll every %s unless it notifies).\n",
			o.replicas, o.goroutines, o.expiries, o.ttl, life, o.latency, rep.Store, o.pollInterval)
	}
	for i, p := range phases {
		fmt.Fprintf(progress, "[%d/%d] %s, %s: %s ...\n", i+1, len(phases), p.name, p.description, benchRunLength(o.ttl, o.expiries))
		r, err := a.runBenchPhase(ctx, o, p, storeURL, storeGiven)
		if err != nil {
			return err
		}
		fmt.Fprintf(progress, "      %d Token calls (%d failed), %d token endpoint calls, %d reuse detections\n",
			r.Calls, r.FailedCalls, r.TokenEndpoint, r.ReuseDetections)
		rep.Runs = append(rep.Runs, r)
	}
	rep.Targets = benchTargets(o, rep.Runs[0])
	rep.Pass = !slices.ContainsFunc(rep.Targets, func(t benchTarget) bool { return !t.Pass })

	if o.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		a.printBench(rep)
	}
	if r := rep.Runs[0]; r.FailedReplicas > 0 {
		return fmt.Errorf("bench: %d tokencache replicas failed", r.FailedReplicas)
	}
	failed := 0
	for _, t := range rep.Targets {
		if !t.Pass && (!t.Timing || o.strict) {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("bench: %d of %d targets failed", failed, len(rep.Targets))
	}
	return nil
}

// benchReport is the bench's result; --json prints it as is.
type benchReport struct {
	Replicas       int           `json:"replicas"`
	Goroutines     int           `json:"goroutines"`
	Expiries       int           `json:"expiries"`
	TTLNs          int64         `json:"ttl_ns"`
	LatencyNs      int64         `json:"latency_ns"`
	ThinkNs        int64         `json:"think_ns"`
	PollIntervalNs int64         `json:"poll_interval_ns"`
	Store          string        `json:"store"`
	Runs           []benchRun    `json:"runs"`
	Targets        []benchTarget `json:"targets"`
	Pass           bool          `json:"pass"`
}

// benchRun is one phase: all replicas together.
type benchRun struct {
	Name            string  `json:"name"`
	Description     string  `json:"description"`
	TokenEndpoint   int64   `json:"token_endpoint_calls"`
	CallsPerExpiry  float64 `json:"calls_per_expiry"`
	ReuseDetections int64   `json:"reuse_detections"`
	Calls           int64   `json:"token_calls"`
	FailedCalls     int64   `json:"failed_token_calls"`
	FailedReplicas  int     `json:"failed_replicas"`
	// Stuck counts goroutines still inside a Token call well after the
	// run ended (x/oauth2's Token takes no context). Their calls are in
	// During at the time they had waited when the replica reported.
	Stuck          int          `json:"stuck_callers"`
	Between        latencyStats `json:"between_refreshes"`
	During         latencyStats `json:"during_refresh"`
	AtomicP50Ns    int64        `json:"atomic_baseline_p50_ns"`
	StoreLoadP50Ns int64        `json:"store_load_p50_ns,omitempty"`
	StorePutP50Ns  int64        `json:"store_put_p50_ns,omitempty"`
	EndpointRTTNs  int64        `json:"endpoint_round_trip_ns"`
	Memory         memoryStats  `json:"memory_per_replica"`
}

type latencyStats struct {
	Calls uint64 `json:"calls"`
	P50Ns int64  `json:"p50_ns"`
	P99Ns int64  `json:"p99_ns"`
	MaxNs int64  `json:"max_ns"`
	// Exact is set when the percentiles come from every sample rather
	// than from histogram buckets (within 1/16 of the value).
	Exact bool `json:"exact"`
}

func statsOf(h *histSum) latencyStats {
	return latencyStats{Calls: h.n, P50Ns: int64(h.quantile(0.5)), P99Ns: int64(h.quantile(0.99)), MaxNs: int64(h.max)}
}

type memoryStats struct {
	HeapInuseAvg uint64 `json:"heap_inuse_avg_bytes"`
	HeapInuseMax uint64 `json:"heap_inuse_max_bytes"`
	RSSAvg       uint64 `json:"rss_avg_bytes"`
	RSSMax       uint64 `json:"rss_max_bytes"`
	// BenchBuffers is the bench's own histograms, included in the heap
	// figures: the same in both runs.
	BenchBuffers uint64 `json:"bench_buffers_bytes"`
}

type benchTarget struct {
	Name string `json:"name"`
	Pass bool   `json:"pass"`
	Line string `json:"line"`
	// Timing targets depend on the machine's load: they fail the run
	// only with --strict.
	Timing bool `json:"timing,omitempty"`
}

func (a *app) runBenchPhase(ctx context.Context, o benchOpts, p benchPhase, storeURL string, storeGiven bool) (benchRun, error) {
	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: o.ttl, Rotate: true})
	defer srv.Close()
	srv.SetLatency(o.latency)
	const clientID = "bench-client"
	clientSecret := newDemoSecret()
	srv.AddClient(clientID, clientSecret)
	rtt, err := probeEndpoint(ctx, srv, 3)
	if err != nil {
		return benchRun{}, fmt.Errorf("bench: timing the token endpoint: %w", err)
	}
	srv.ResetStats() // the probes are not the load's calls
	refreshToken := srv.IssueRefreshToken(clientID)
	if p.mode == modeShared {
		if err := seedShared(ctx, storeURL, benchProfile, srv.TokenURL(), clientID, clientSecret, refreshToken); err != nil {
			return benchRun{}, fmt.Errorf("bench: seeding %s: %w", storage.Redact(storeURL), err)
		}
		if storeGiven {
			defer dropProfile(storeURL, benchProfile)
		}
	}

	args := append(replicaTuning(storeURL, benchProfile, o.pollInterval, o.latency),
		"bench-replica", "--mode", p.mode, "--goroutines", strconv.Itoa(o.goroutines), "--expiries", strconv.Itoa(o.expiries),
		"--think", o.think.String(), "--run-for", benchRunLength(o.ttl, o.expiries).String(),
		"--token-url", srv.TokenURL(), "--client-id", clientID,
	)
	// Secrets go by environment, not argv, where ps would show them.
	environ := append(os.Environ(), envDemoSecret+"="+clientSecret, envDemoRefresh+"="+refreshToken)
	reps, err := a.startReplicas(ctx, "bench", o.replicas, args, environ)
	if err != nil {
		return benchRun{}, err
	}
	defer reps.Close()
	if err := reps.awaitReady(ctx, 30*time.Second+time.Duration(o.replicas)*time.Second); err != nil {
		return benchRun{}, err
	}
	reps.start()
	// The replicas stop by themselves; the stop the parent sends after is
	// a backstop.
	if err := backoff.Sleep(ctx, benchRunLength(o.ttl, o.expiries)); err != nil {
		return benchRun{}, err
	}
	reports, crashed := reps.finish(30*time.Second + benchStopGrace + benchBaselineFor)

	st := srv.Stats()
	r := benchRun{
		Name: p.name, Description: p.description,
		TokenEndpoint:   st.TokenCalls,
		CallsPerExpiry:  float64(st.TokenCalls) / float64(o.expiries),
		ReuseDetections: st.ReuseDetections,
		FailedReplicas:  crashed,
		EndpointRTTNs:   int64(rtt),
	}
	var between, during, atomicSum, load, put histSum
	var heapSum, rssSum uint64
	var waits []int64
	exact := true
	n := uint64(0)
	for _, c := range reports {
		b := c.Bench
		if b == nil {
			continue
		}
		n++
		r.Calls += b.Calls
		r.FailedCalls += b.Failed
		r.Stuck += b.Stuck
		between.add(b.Between)
		during.add(b.During)
		atomicSum.add(b.Atomic)
		load.add(b.StoreLoad)
		put.add(b.StorePut)
		waits = append(waits, b.Waits...)
		exact = exact && (b.Waits != nil || b.During.Buckets == nil)
		heapSum += b.HeapInuse
		rssSum += b.RSS
		r.Memory.HeapInuseMax = max(r.Memory.HeapInuseMax, b.HeapInuse)
		r.Memory.RSSMax = max(r.Memory.RSSMax, b.RSS)
		r.Memory.BenchBuffers = b.Buffers
	}
	if n > 0 {
		r.Memory.HeapInuseAvg, r.Memory.RSSAvg = heapSum/n, rssSum/n
	}
	r.Between, r.During = statsOf(&between), statsOf(&during)
	if exact && len(waits) > 0 {
		// Exact waits beat the histogram's 6% buckets where a target
		// compares them with a limit a few store round trips wide.
		slices.Sort(waits)
		q := func(f float64) int64 { return waits[min(len(waits)-1, int(math.Ceil(f*float64(len(waits))))-1)] }
		r.During = latencyStats{Calls: uint64(len(waits)), P50Ns: q(0.5), P99Ns: q(0.99), MaxNs: waits[len(waits)-1], Exact: true}
	}
	r.StorePutP50Ns = int64(put.quantile(0.5))
	r.AtomicP50Ns = int64(atomicSum.quantile(0.5))
	r.StoreLoadP50Ns = int64(load.quantile(0.5))
	return r, nil
}

// probeEndpoint times token requests as a client on this machine sees
// them: the configured latency plus HTTP and the server's work. It uses
// the client credentials grant so that no refresh token is touched, and
// runs the requests at once so that they cost one latency.
func probeEndpoint(ctx context.Context, srv *oauthtest.Server, n int) (time.Duration, error) {
	const id, sec = "bench-probe", "bench-probe-secret"
	srv.AddClient(id, sec)
	hc := &http.Client{Timeout: 30 * time.Second}
	times := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			t0 := time.Now()
			_, errs[i] = credentials.RequestToken(ctx, hc, credentials.AuthBasic, srv.TokenURL(),
				url.Values{"grant_type": {"client_credentials"}}, id, secret.Secret(sec))
			times[i] = time.Since(t0)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	slices.Sort(times)
	return times[n/2], nil
}

// benchRunLength is how long the load runs: expiries token lifetimes,
// stopping half a lifetime before the last one ends, so that no call is
// made after it (which would start a refresh for the next).
func benchRunLength(ttl time.Duration, expiries int) time.Duration {
	life := ttl - demoSkew
	return time.Duration(expiries)*life - life/2
}

// benchTargets checks the tokencache run against the issue's targets.
func benchTargets(o benchOpts, r benchRun) []benchTarget {
	var ts []benchTarget
	add := func(name string, pass bool, format string, args ...any) {
		verdict := "FAIL"
		if pass {
			verdict = "PASS"
		}
		timing := name == "cached_p50" || name == "waiter_p99"
		if timing && !pass && !o.strict {
			verdict = "MISS" // reported, not failing: see --strict
		}
		ts = append(ts, benchTarget{Name: name, Pass: pass, Line: verdict + "  " + fmt.Sprintf(format, args...), Timing: timing})
	}
	add("calls_per_expiry", r.TokenEndpoint == int64(o.expiries),
		"token endpoint calls per expiry: %.2f (%d calls for %d expiries; want exactly 1)", r.CallsPerExpiry, r.TokenEndpoint, o.expiries)
	add("reuse_detections", r.ReuseDetections == 0, "reuse detections: %d (want 0)", r.ReuseDetections)
	add("failed_calls", r.FailedCalls == 0 && r.FailedReplicas == 0 && r.Stuck == 0 && r.Calls > 0,
		"failed Token calls: %d of %d, failed replicas: %d, stuck callers: %d (want 0)", r.FailedCalls, r.Calls, r.FailedReplicas, r.Stuck)

	atomicP50, p50 := time.Duration(r.AtomicP50Ns), time.Duration(r.Between.P50Ns)
	add("cached_p50", r.Between.Calls > 0 && atomicP50 > 0 && p50 <= 2*atomicP50,
		"Token p50 between refreshes: %s, at most 2 x atomic.Pointer baseline p50 %s = %s (%d calls)",
		fmtDur(p50), fmtDur(atomicP50), fmtDur(2*atomicP50), r.Between.Calls)

	rtt, load, p99 := time.Duration(r.EndpointRTTNs), time.Duration(r.StoreLoadP50Ns), time.Duration(r.During.P99Ns)
	limit := rtt + 2*load
	add("waiter_p99", r.During.Calls > 0 && p99 <= limit,
		"Token p99 during a refresh: %s, at most endpoint round trip %s + 2 x store Load p50 %s = %s (%d waiting calls)",
		fmtDur(p99), fmtDur(rtt), fmtDur(load), fmtDur(limit), r.During.Calls)
	return ts
}

func (a *app) printBench(rep benchReport) {
	w := a.stdout
	fmt.Fprintf(w, "\nSummary: %d replicas x %d goroutines, %d expiries of a %s token, endpoint latency %s\n",
		rep.Replicas, rep.Goroutines, rep.Expiries, time.Duration(rep.TTLNs), time.Duration(rep.LatencyNs))
	row := func(label string, cell func(r benchRun) string) {
		line := fmt.Sprintf("  %-34s", label)
		for _, r := range rep.Runs {
			line += fmt.Sprintf("%30s", cell(r))
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	row("", func(r benchRun) string { return r.Name })
	row("", func(r benchRun) string { return r.Description })
	row("Token calls", func(r benchRun) string { return fmt.Sprint(r.Calls) })
	row("failed Token calls", func(r benchRun) string { return fmt.Sprint(r.FailedCalls) })
	row("callers still waiting at the end", func(r benchRun) string { return fmt.Sprint(r.Stuck) })
	row("token endpoint calls", func(r benchRun) string { return fmt.Sprint(r.TokenEndpoint) })
	row("  per expiry", func(r benchRun) string { return fmt.Sprintf("%.2f", r.CallsPerExpiry) })
	row("reuse detections", func(r benchRun) string { return fmt.Sprint(r.ReuseDetections) })
	lat := func(title string, s func(benchRun) latencyStats) {
		row(title+": calls", func(r benchRun) string { return fmt.Sprint(s(r).Calls) })
		row("  p50", func(r benchRun) string { return fmtDur(time.Duration(s(r).P50Ns)) })
		row("  p99", func(r benchRun) string { return fmtDur(time.Duration(s(r).P99Ns)) })
		row("  max", func(r benchRun) string { return fmtDur(time.Duration(s(r).MaxNs)) })
	}
	lat("Token between refreshes", func(r benchRun) latencyStats { return r.Between })
	lat("Token during a refresh", func(r benchRun) latencyStats { return r.During })
	row("atomic.Pointer baseline p50", func(r benchRun) string { return fmtDur(time.Duration(r.AtomicP50Ns)) })
	row("store round trip (Load) p50", func(r benchRun) string {
		if r.StoreLoadP50Ns == 0 {
			return "-"
		}
		return fmtDur(time.Duration(r.StoreLoadP50Ns))
	})
	row("store write (conditional Put) p50", func(r benchRun) string {
		if r.StorePutP50Ns == 0 {
			return "-"
		}
		return fmtDur(time.Duration(r.StorePutP50Ns))
	})
	row("token endpoint round trip", func(r benchRun) string { return fmtDur(time.Duration(r.EndpointRTTNs)) })
	row("heap in use per replica: avg", func(r benchRun) string { return fmtBytes(r.Memory.HeapInuseAvg) })
	row("  max", func(r benchRun) string { return fmtBytes(r.Memory.HeapInuseMax) })
	row("  of which bench histograms", func(r benchRun) string { return fmtBytes(r.Memory.BenchBuffers) })
	row("RSS per replica: avg", func(r benchRun) string { return fmtBytes(r.Memory.RSSAvg) })
	row("  max", func(r benchRun) string { return fmtBytes(r.Memory.RSSMax) })

	fmt.Fprintf(w, "\nTargets (tokencache run):\n")
	for _, t := range rep.Targets {
		fmt.Fprintln(w, t.Line)
	}
}

// fmtDur prints a duration with about four significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.4gµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.4gms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.4gs", d.Seconds())
}

func fmtBytes(n uint64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
