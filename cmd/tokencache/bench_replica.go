package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/storage"
)

// A bench replica is a separate OS process like a demo replica (same
// start/stop protocol, same token sources) that calls Token directly
// instead of making HTTP requests, times every call, and ends with one
// report: its latency histograms, a store round trip and an atomic-pointer
// baseline measured in this same process, and its memory.

const (
	// benchBaselineFor is how long the atomic-pointer baseline runs, after
	// the load, with as many goroutines as the load had.
	benchBaselineFor = 300 * time.Millisecond
	// benchStoreLoads is how many Loads time a store round trip.
	benchStoreLoads = 50
	// benchStorePuts is how many conditional Puts time a store write.
	benchStorePuts = 10
	// benchExactWaits caps the waits one goroutine keeps exactly. Waits
	// are rare (about one per goroutine per refresh) and are compared with
	// a limit only store round trips above the endpoint latency, finer than
	// the histogram resolves at 100 ms; past the cap the histogram serves.
	benchExactWaits = 1024
	// benchStopGrace is how long a replica waits for its goroutines to
	// notice the stop.
	benchStopGrace = 2 * time.Second
	// benchFailPause is how long a goroutine pauses after a failed Token
	// call, as a client that retries would.
	benchFailPause = 100 * time.Millisecond
)

// benchReplicaReport is a bench replica's final report.
type benchReplicaReport struct {
	Calls  int64 `json:"calls"`
	Failed int64 `json:"failed"`
	// Interrupted calls were cut short by the stop: the library counts
	// them (as failed: the caller's context ended), the load does not.
	Interrupted int64        `json:"interrupted"`
	Between     histSnapshot `json:"between"`    // calls that found a valid token in memory
	During      histSnapshot `json:"during"`     // calls that had to wait for a refresh
	Waits       []int64      `json:"waits_ns"`   // the same exactly; nil when too many
	StorePut    histSnapshot `json:"store_put"`  // conditional Puts (shared mode)
	Atomic      histSnapshot `json:"atomic"`     // the atomic.Pointer baseline
	StoreLoad   histSnapshot `json:"store_load"` // Loads of the profile (shared mode)
	HeapInuse   uint64       `json:"heap_inuse_bytes"`
	RSS         uint64       `json:"rss_bytes"`
	Buffers     uint64       `json:"bench_buffers_bytes"` // the histograms, part of HeapInuse
	Stuck       int          `json:"stuck"`               // goroutines still in a Token call long after the stop
	// Library is what the library's metrics recorded during the load.
	Library *libraryFigures `json:"library,omitempty"`
}

type benchReplicaOpts struct {
	replicaLoad
	expiries int
	runFor   time.Duration
	warmUp   bool // get a token before reporting ready: the load starts in steady state
}

func (a *app) benchReplicaCmd() *cobra.Command {
	var o benchReplicaOpts
	cmd := a.replicaCommand("bench-replica", func(ctx context.Context) error { return a.runBenchReplica(ctx, o) })
	o.addFlags(cmd.Flags(), 50, 0)
	f := cmd.Flags()
	f.IntVar(&o.expiries, "expiries", 3, "token lifetimes the load lasts (sizes buffers)")
	f.DurationVar(&o.runFor, "run-for", 0, "how long the load lasts from the start line")
	f.BoolVar(&o.warmUp, "warm-up", false, "get a token before the start line, so that the load begins with one in memory")
	return cmd
}

func (a *app) runBenchReplica(ctx context.Context, o benchReplicaOpts) error {
	// Only refreshes use HTTP, one at a time per process.
	base := &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}
	defer base.CloseIdleConnections()
	hc := &http.Client{Transport: base, Timeout: a.tune.httpTimeout}
	toks, err := a.openReplicaTokens(ctx, o.replicaLoad, hc)
	if err != nil {
		return err
	}
	defer toks.Close()

	var rep benchReplicaReport
	var src benchSource
	if toks.creds != nil {
		src = credsSource{toks.creds}
		// Before the load, so that these neither compete with it nor wait
		// behind it.
		if rep.StoreLoad, rep.StorePut, err = a.timeStore(ctx, toks.store); err != nil {
			return err
		}
	} else {
		src = oauth2Source{toks.src, a.tune.skew}
	}
	// Every buffer a measurement writes to exists before the load starts.
	waitCap := 4*o.expiries + 16
	load, baseline := newBenchRecs(o.goroutines, waitCap), newBenchRecs(o.goroutines, 0)
	rep.Buffers = uint64(2*o.goroutines)*uint64(unsafe.Sizeof(benchRec{})) + uint64(o.goroutines*waitCap)*8

	keepWarm := func() {}
	if o.warmUp {
		if _, err := src.call(ctx); err != nil {
			return err
		}
		// Until the start line, a caller now and then keeps the token
		// renewed, as in a replica that has been running: replicas start
		// slowly on a busy machine, and a token left alone is not renewed
		// ahead (renewal is started by a Token call).
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for backoff.Sleep(wctx, 50*time.Millisecond) == nil {
				src.call(wctx)
			}
		}()
		keepWarm = func() { cancel(); <-done }
	}

	link := a.newReplicaLink()
	loadCtx, stop, started := link.awaitStart(ctx)
	keepWarm()
	if !started {
		return nil // the bench went away before the start
	}
	defer stop()
	// The library's figures are the load's: what it recorded before (the
	// warm-up) is taken off.
	before := toks.figures(ctx)
	begin := time.Now()
	for _, r := range load {
		r.since.Store(begin.UnixNano())
	}
	rep.Stuck = runBenchLoad(loadCtx, src, load, o.think, begin.Add(o.runFor))
	stuck := stuckWaits(load)

	// Memory now, while the token source is open and holds its token.
	rep.HeapInuse, rep.RSS = memoryInUse()
	runBenchLoad(ctx, newAtomicSource(), baseline, o.think, time.Now().Add(benchBaselineFor))
	rep.Library = toks.finalFigures(ctx, before)

	var between, during, atomicSum histSum
	exact := true
	for i := range load {
		if !load[i].exited.Load() {
			continue
		}
		between.addHist(&load[i].between)
		during.addHist(&load[i].during)
		atomicSum.addHist(&baseline[i].between)
		rep.Calls += load[i].calls
		rep.Failed += load[i].failed
		rep.Interrupted += load[i].interrupted
		exact = exact && len(load[i].waits) <= benchExactWaits
	}
	// A stuck caller is a wait too, and the longest: count it at its wait
	// so far rather than leave it out.
	var stuckHist latencyHist
	for _, d := range stuck {
		stuckHist.record(d)
		rep.Calls++
	}
	during.addHist(&stuckHist)
	if exact {
		for _, d := range stuck {
			rep.Waits = append(rep.Waits, int64(d))
		}
		for _, r := range load {
			if !r.exited.Load() {
				continue
			}
			for _, d := range r.waits {
				rep.Waits = append(rep.Waits, int64(d))
			}
		}
	}
	rep.Between, rep.During, rep.Atomic = between.snapshot(), during.snapshot(), atomicSum.snapshot()
	link.report(replicaReport{Done: true, Bench: &rep})
	return nil
}

// timeStore times Loads of the bench's profile (a store round trip) and
// conditional Puts of a scratch profile of this replica's own (a write,
// which the lease and the refreshed token each cost), then removes it.
func (a *app) timeStore(ctx context.Context, st *storage.Store) (load, put histSnapshot, err error) {
	var lh, ph latencyHist
	for range benchStoreLoads {
		t0 := time.Now()
		if _, _, err := st.Load(ctx, a.profile); err != nil {
			return load, put, err
		}
		lh.record(time.Since(t0))
	}
	scratch := &storage.Record{Profile: a.profile + "-scratch-" + strconv.Itoa(os.Getpid())}
	defer st.Delete(context.WithoutCancel(ctx), scratch.Profile)
	var prev *storage.Record
	rev := storage.Revision("")
	for range benchStorePuts {
		next := scratch.Clone()
		t0 := time.Now()
		if rev, err = st.Replace(ctx, prev, rev, next); err != nil {
			return load, put, err
		}
		ph.record(time.Since(t0))
		prev = next
	}
	return lh.snapshot(), ph.snapshot(), nil
}

// benchSource is what the load calls: the same loop and the same dynamic
// call measure tokencache, x/oauth2 and the atomic-pointer baseline, so
// that what the timing itself costs is the same in all three.
type benchSource interface {
	// call gets a token, as a pointer: it fits in an interface without
	// allocating.
	call(ctx context.Context) (tok any, err error)
	// validUntil is when tok stops being handed out.
	validUntil(tok any) time.Time
}

type credsSource struct{ c *credentials.Credentials }

func (s credsSource) call(ctx context.Context) (any, error) {
	t, err := s.c.Token(ctx)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (s credsSource) validUntil(tok any) time.Time { return tok.(*credentials.Token).ValidUntil() }

type oauth2Source struct {
	ts   oauth2.TokenSource
	skew time.Duration // the ReuseTokenSource's expiry delta
}

func (s oauth2Source) call(context.Context) (any, error) {
	t, err := s.ts.Token()
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (s oauth2Source) validUntil(tok any) time.Time {
	return tok.(*oauth2.Token).Expiry.Add(-s.skew)
}

// atomicSource is the floor for any in-memory token cache: an atomic
// pointer load and a clock comparison, nothing else.
type atomicSource struct {
	p *atomic.Pointer[baselineToken]
}

type baselineToken struct{ until time.Time }

var errBaselineExpired = errors.New("baseline token expired")

func newAtomicSource() atomicSource {
	s := atomicSource{p: new(atomic.Pointer[baselineToken])}
	s.p.Store(&baselineToken{until: time.Now().Add(24 * time.Hour)})
	return s
}

func (s atomicSource) call(context.Context) (any, error) {
	t := s.p.Load()
	if !time.Now().Before(t.until) {
		return nil, errBaselineExpired
	}
	return t, nil
}

func (s atomicSource) validUntil(tok any) time.Time { return tok.(*baselineToken).until }

// benchRec is one goroutine's measurements. Each is allocated on its own
// so that goroutines never write to a cache line another one writes.
type benchRec struct {
	between, during latencyHist
	calls, failed   int64
	interrupted     int64           // calls the stop cut short: not samples
	waits           []time.Duration // exact durations of the during calls
	exited          atomic.Bool     // the goroutine is done with this record
	since           atomic.Int64    // Unix ns when its current call began, about
}

func newBenchRecs(n, waits int) []*benchRec {
	recs := make([]*benchRec, n)
	now := time.Now().UnixNano()
	for i := range recs {
		recs[i] = &benchRec{waits: make([]time.Duration, 0, waits)}
		recs[i].since.Store(now)
	}
	return recs
}

// runBenchLoad has one goroutine per rec call src until ctx ends. Each
// call is timed alone, and only the call: classifying and recording it
// happen after the clock stops.
//
// Goroutines stop at stopAt by themselves, checking the clock they read
// anyway, rather than on a signal: a signal reaches a process busy with
// a thousand goroutines late, and a call made after the last token ran out
// would start one refresh too many. ctx ending stops them too.
//
// runBenchLoad returns once every goroutine has stopped, or grace after
// stopAt or ctx's end, whichever is first. x/oauth2's Token takes no
// context: goroutines queued on its lock behind refreshes that fail (once
// the server revoked the grant) stay blocked long after the stop. Their
// records cannot be read while they may still write them, so they are left
// out and counted as stuck.
func runBenchLoad(ctx context.Context, src benchSource, recs []*benchRec, think time.Duration, stopAt time.Time) (stuck int) {
	// latest is when the newest token any goroutine here has seen stops
	// being handed out (Unix ns). A call that starts later finds no valid
	// token in this process, so it waits for a refresh: its own flight's,
	// or another replica's through the store.
	var latest atomic.Int64
	var wg sync.WaitGroup
	for _, rec := range recs {
		wg.Go(func() {
			defer rec.exited.Store(true) // after its last write to rec
			for ctx.Err() == nil {
				until := latest.Load()
				t0 := time.Now()
				if !t0.Before(stopAt) {
					break
				}
				tok, err := src.call(ctx)
				d := time.Since(t0)
				// When the next call began, near enough, for a call that
				// never returns; stored outside the timed region.
				rec.since.Store(t0.UnixNano() + int64(d))
				if err != nil && ctx.Err() != nil {
					rec.interrupted++
					break // stopped mid-call: neither a failure nor a sample
				}
				rec.calls++
				var v int64
				if err == nil {
					v = src.validUntil(tok).UnixNano()
				}
				// A call that brought a token newer than any this process
				// knew when it began crossed a refresh, even if it began
				// just before the old token ran out: it waited, so it is
				// not a cached-path call.
				if t0.UnixNano() >= until || v > until {
					rec.during.record(d)
					rec.waits = append(rec.waits, d)
				} else {
					rec.between.record(d)
				}
				pause := think
				if err != nil {
					rec.failed++
					pause = benchFailPause
				} else if v > until {
					raiseTo(&latest, v)
				}
				if pause > 0 {
					backoff.Sleep(ctx, pause)
				} else {
					// Yield: a lock-free cached path never blocks, so
					// goroutines calling it back to back would run until the
					// scheduler preempts them (10 ms each), and a waiter woken
					// behind dozens of them, or one preempted mid-call, would
					// measure Go's run queue rather than the token source.
					runtime.Gosched()
				}
			}
		})
	}
	all := make(chan struct{})
	go func() {
		wg.Wait()
		close(all)
	}()
	select {
	case <-all:
		return 0
	case <-ctx.Done():
	case <-time.After(time.Until(stopAt)):
	}
	select {
	case <-all:
		return 0
	case <-time.After(benchStopGrace):
	}
	for _, r := range recs {
		if !r.exited.Load() {
			stuck++
		}
	}
	return stuck
}

// stuckWaits are the waits so far of the calls runBenchLoad left running:
// lower bounds of how long they will have waited.
func stuckWaits(recs []*benchRec) []time.Duration {
	var ws []time.Duration
	for _, r := range recs {
		if !r.exited.Load() {
			ws = append(ws, time.Since(time.Unix(0, r.since.Load())))
		}
	}
	return ws
}

func raiseTo(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

// memoryInUse is the heap in use after a collection, and the resident set
// size where /proc tells it (0 elsewhere).
func memoryInUse() (heapInuse, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ms.HeapInuse, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				rss = kb << 10
			}
		}
	}
	return ms.HeapInuse, rss
}
