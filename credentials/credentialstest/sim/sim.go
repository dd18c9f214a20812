// Package sim is a seeded fault-injection simulation of the refresh
// protocol, in the style of FoundationDB's simulator and Jepsen's checkers,
// scaled to one library: it proves (or disproves) the promise that the
// grant is never lost — a refresh token the server rotated is never
// presented again, and a rotated refresh token is never dropped.
//
// One run, for one seed, starts an oauthtest server that rotates refresh
// tokens and revokes the grant on reuse, and a fleet of replicas: each a
// credentials.Credentials of its own with its own settings (LeaseTTL,
// RefreshTimeout, Skew, retries, a clock up to ±5 minutes off), over its
// own faultstore wrapper over one shared inner adapter (memory, file,
// SQLite, or whatever Options.Open returns). Callers on each replica ask
// for tokens, and now and then report one as stale, over a few token
// lifetimes. The seed draws the fleet and every fault: store latency,
// failures before and after a write applied, dropped replies, partitions
// of one replica, the profile evicted or the store restarted empty while a
// refresh is at the server, token endpoint 5xx, timeouts, truncated bodies,
// slow replies, and replies that come after the client gave up although
// the server rotated, replicas closed and restarted at random points and, with
// Options.Process, a replica process killed with SIGKILL before or after
// the server rotated its refresh token.
//
// After the run the faults stop, partitions heal, the fleet gets a moment
// to flush what it holds, every replica is closed, and the invariants are
// checked (see Invariant). A failing run reports its seed, the scenario and
// the fault schedule; TOKENCACHE_SIM_SEED=N replays it.
//
// Replay is exact for what the seed decides up front (the fleet, its
// settings, when replicas close, restart, are partitioned or killed, the
// callers' schedules) and for the sequence of per-call faults each
// replica's store wrapper and the token endpoint draw. Which call gets the
// n-th draw depends on how the Go scheduler interleaves the replicas, so
// a replay follows the same schedule but not always the same interleaving:
// a failure that needs a narrow race may need a few replays (-count=N).
package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// Options shape the runs. Open is required.
type Options struct {
	// Open returns a new, empty inner adapter that every replica of one
	// run shares. The run closes it.
	Open func(t testing.TB) driver.Adapter
	// Store names the adapter in reports.
	Store string

	// Lifetime is the access-token lifetime, whole seconds [1s].
	Lifetime time.Duration
	// Duration is how long the callers run [1.5s].
	Duration time.Duration

	// Journal returns the refresh tokens the replicas' recovery journals
	// hold for profile, given the journal directories: the final-token
	// invariant also accepts the server's current token found there. Nil
	// reads the credentials package's journal files (one JSON entry per
	// file, its "record" member a stored Record).
	Journal func(dirs []string, profile string) []secret.Secret

	// Process, when set, runs a replica as an OS process in some seeds
	// and kills it with SIGKILL at the server. The inner store must be one
	// another process can open by URL.
	Process *ProcessOptions

	// Verbose logs the scenario, the schedule and the counts of passing
	// runs too.
	Verbose bool

	// For the harness's own tests: change the drawn scenario, and do harm
	// during the run, to prove that the checks catch it.
	adjust   func(*scenario)
	sabotage func(r *run)
}

// ProcessOptions configure the seeds that kill a replica process.
type ProcessOptions struct {
	// URL opens, in the child process, the store Open returned in this
	// one (a file or SQLite path). It is called once per run.
	URL func(t testing.TB) string
	// Rate is the share of non-clean seeds that kill a process [0.3].
	Rate float64
}

func (o *Options) defaults() {
	if o.Lifetime <= 0 {
		o.Lifetime = time.Second
	}
	if o.Duration <= 0 {
		o.Duration = 1500 * time.Millisecond
	}
	if o.Store == "" {
		o.Store = "store"
	}
	if o.Process != nil && o.Process.Rate == 0 {
		o.Process.Rate = 0.3
	}
}

const (
	profile      = "sim"
	clientID     = "sim-client"
	clientSecret = "sim-client-secret-7f3a9c"
	replicaHdr   = "X-Sim-Replica"
	requestHdr   = "X-Sim-Request"
)

// run is the state of one simulation run.
type run struct {
	t     testing.TB
	o     *Options
	sc    *scenario
	start time.Time

	srv    *oauthtest.Server
	world  *faultstore.World
	clean  *storage.Store // the inner store without faults, for the checks
	seedRT string         // the grant's first refresh token: names the family
	logs   *syncBuffer
	logger *slog.Logger

	live atomic.Bool // the load phase runs: world events may strike

	mu       sync.Mutex
	timeline []mark              // closes, restarts, partitions, kills, world events by the server hook
	callers  map[int64]string    // token call number -> the replica that made it
	requests map[int64]int64     // token call number -> the client's request id
	received map[int64]bool      // request ids whose answer the client read in full
	ended    map[int64]time.Time // request ids and when their client had the answer or gave up
	wipes    []wipe              // the store lost the profile during these token calls
	gaveUp   map[int64]time.Time // request ids whose client gave up (an error), and when
	sentAt   map[int64]time.Time // request ids, and when the client sent them
	reqSeq   atomic.Int64
	res      *Result
	killed   *killRecord

	journals string    // a recovery journal directory per replica under it
	invalid  []handout // tokens handed out that the server did not take

	// The store's history, as World.OnWrite reports it (serialised).
	storedGen int       // generation of the refresh token stored; -1: no record
	storedVal []byte    // the value stored, as last seen; nil: no record
	lastWrite time.Time // when the last write seen was made
	maxGen    int       // the newest generation ever stored
	writes    []storeWrite

	putBacks   []putBack // spent generations written into a store that lost the record
	olderBacks []putBack // generations older than one stored before, written into a store that lost the record
	stalls     []window2 // the process did not run (a starved machine)
}

// storeWrite is one write that reached the store, for the diagnosis.
type storeWrite struct {
	at       time.Time
	who      string
	gen      int  // -1 for a delete
	lease    bool // the record carries a lease
	told     faultstore.Kind
	backward bool // broke the lineage rule
}

// wipe is the store losing the profile during token call req of replica
// who.
type wipe struct {
	at  time.Time
	who string
	req int64
}

// mark is a harness event for the schedule.
type mark struct {
	at      time.Time
	who     string
	what    string
	disturb bool // counts as a fault for calls per expiry
}

func (r *run) note(who, what string, disturb bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timeline = append(r.timeline, mark{at: time.Now(), who: who, what: what, disturb: disturb})
}

// Run runs the simulation for one seed and checks its invariants; t fails
// when one does not hold. The Result is for summaries.
func Run(t testing.TB, seed int64, o Options) *Result {
	if spec := childSpec(); spec != "" {
		runChild(t, spec)
		return nil
	}
	if o.Open == nil {
		t.Fatal("sim: Options.Open is required")
	}
	o.defaults()
	r := &run{t: t, o: &o, sc: newScenario(seed, &o), logs: &syncBuffer{},
		callers: map[int64]string{}, requests: map[int64]int64{}, received: map[int64]bool{}, ended: map[int64]time.Time{}, gaveUp: map[int64]time.Time{}, sentAt: map[int64]time.Time{}}
	if o.adjust != nil {
		o.adjust(r.sc)
	}
	r.res = &Result{Seed: seed, Store: o.Store, Tier: r.sc.tier.String()}
	r.logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	r.srv = oauthtest.NewServer(oauthtest.Options{AccessTTL: o.Lifetime, Rotate: true, ReuseGrace: r.sc.grace,
		HangLimit: 3 * time.Second, SlowReply: r.sc.slowReply, Logger: r.logger})
	defer r.srv.Close()
	r.srv.AddClient(clientID, clientSecret)

	inner := o.Open(t)
	r.world = faultstore.NewWorld(inner)
	defer r.world.Close()
	// A Store over the inner adapter, never closed (that would close the
	// adapter under the replicas): the World closes it.
	r.clean = storage.NewStore(inner)
	r.seedRT = r.srv.IssueRefreshToken(clientID)
	ctx := context.Background()
	seedRec := &storage.Record{Profile: profile, ClientID: clientID, ClientSecret: clientSecret,
		TokenURL: r.srv.TokenURL(), AccessToken: "expired-seed-access-token", Expiry: time.Now().Add(-time.Hour)}
	seedRec.Seed(r.seedRT) // as init does: the record names its grant
	_, err := r.clean.Replace(ctx, nil, "", seedRec)
	if err != nil {
		t.Fatalf("sim: seeding the store: %v", err)
	}
	if r.storedVal, _, err = inner.Get(ctx, profile); err != nil {
		t.Fatalf("sim: reading the seed back: %v", err)
	}
	r.srv.SetFaultFunc(r.serverFaults())
	r.world.OnWrite(r.onWrite)

	r.journals = t.TempDir()
	r.start = time.Now()
	r.live.Store(true)
	stopStalls := r.watchStalls()
	var procURL string
	if r.sc.kill != nil {
		procURL = o.Process.URL(t)
	}
	reps := make([]*replica, len(r.sc.replicas))
	var wg sync.WaitGroup
	for i, p := range r.sc.replicas {
		reps[i] = &replica{r: r, plan: p,
			fs: r.world.Adapter(p.name, rand.New(rand.NewPCG(p.seed, 1)), p.storeRates())}
		wg.Go(reps[i].run)
	}
	if r.sc.kill != nil {
		wg.Go(func() { r.killProcess(procURL) })
	}
	if o.sabotage != nil {
		wg.Go(func() { o.sabotage(r) })
	}
	wg.Wait()
	r.live.Store(false)
	stopStalls()

	// The end: faults stop (the fault function injects none once live is
	// false), partitions heal, and the fleet gets a moment to write what
	// it holds before it is closed.
	for _, rep := range reps {
		rep.fs.SetRates(faultstore.Rates{})
		rep.fs.Partition(false)
	}
	// A live fleet writes what it holds back once the store answers: each
	// replica flushes, its own held-back token and its journal's (a
	// restarted replica's predecessor may have left one).
	var flushes sync.WaitGroup
	for _, rep := range reps {
		flushes.Go(rep.flush)
	}
	flushes.Wait()
	r.settle()
	for _, rep := range reps {
		rep.close()
	}
	// A request a client gave up on may still be on its way: the server
	// finishes what it has in hand and takes nothing more, so that the
	// checks read one state of the grant and one log.
	r.srv.Close()
	r.check()
	r.report()
	return r.res
}

// serverFaults draws, per token call in arrival order, the endpoint's fault
// and, for calls without one, whether the store loses the profile while the
// refresher (who holds the lease) is at the server.
func (r *run) serverFaults() func(oauthtest.Call) oauthtest.Fault {
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(uint64(r.sc.seed), 2))
	return func(c oauthtest.Call) oauthtest.Fault {
		id, _ := strconv.ParseInt(c.Header.Get(requestHdr), 10, 64)
		r.mu.Lock()
		r.callers[c.N] = c.Header.Get(replicaHdr)
		r.requests[c.N] = id
		r.mu.Unlock()
		if c.Header.Get(replicaHdr) == childReplica {
			return 0 // the process replica is stopped by a hold instead
		}
		mu.Lock()
		f, kind, ev := rnd.Float64(), rnd.IntN(len(serverFaults)), rnd.Float64()
		mu.Unlock()
		if !r.live.Load() {
			return 0
		}
		if f < r.sc.serverFault {
			return serverFaults[kind]
		}
		ctx := context.Background()
		wiped := false
		switch {
		case ev < r.sc.evict:
			if wiped = r.world.Evict(ctx, profile) == nil; wiped {
				r.note("world", "profile evicted while a refresh is at the server", true)
			}
		case ev < r.sc.evict+r.sc.restart:
			if wiped = r.world.RestartEmpty(ctx) == nil; wiped {
				r.note("world", "store restarted empty while a refresh is at the server", true)
			}
		}
		if wiped {
			r.mu.Lock()
			r.wipes = append(r.wipes, wipe{at: time.Now(), who: c.Header.Get(replicaHdr), req: id})
			r.mu.Unlock()
		}
		return 0
	}
}

// watchStalls notes, until stop is called, every moment the process did
// not run for 100 ms or more, or ran in fits that lost as much within a
// quarter second: a lease cannot exclude a holder that was
// paused past it, and on a loaded machine (CI on two cores under -race)
// such pauses happen. They count as faults for the checks.
func (r *run) watchStalls() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		const tick, window = 5 * time.Millisecond, 250 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		last := time.Now()
		// A starved process also runs in fits: many late ticks, none of
		// them 100 ms late. Lateness adding up to 100 ms within a window
		// holds every goroutine back as much as one long stall.
		type late struct {
			at time.Time
			by time.Duration
		}
		var recent []late
		var sum time.Duration
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				gap := now.Sub(last)
				if gap >= 100*time.Millisecond {
					r.mu.Lock()
					r.stalls = append(r.stalls, window2{last, now})
					r.mu.Unlock()
					r.note("world", fmt.Sprintf("the process stalled for %v", gap.Round(time.Millisecond)), true)
					recent, sum = nil, 0
				} else if gap > 2*tick {
					recent = append(recent, late{now, gap - tick})
					sum += gap - tick
				}
				for len(recent) > 0 && now.Sub(recent[0].at) > window {
					sum -= recent[0].by
					recent = recent[1:]
				}
				if sum >= 100*time.Millisecond {
					from := recent[0].at.Add(-recent[0].by)
					r.mu.Lock()
					r.stalls = append(r.stalls, window2{from, now})
					r.mu.Unlock()
					r.note("world", fmt.Sprintf("the process ran in fits: %v of the last %v lost", sum.Round(time.Millisecond), now.Sub(from).Round(time.Millisecond)), true)
					recent, sum = nil, 0
				}
				last = now
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// onWrite follows every write that reached the store and checks the
// lineage rule: a stored refresh token is replaced only by a newer
// generation of the grant, never an older one, and never by a token the
// server did not issue.
func (r *run) onWrite(wr faultstore.Write) {
	if wr.Key != profile {
		return
	}
	if wr.BeforeKnown && !bytes.Equal(wr.Before, r.storedVal) {
		// A writer outside the World changed the record since the last
		// write it reported: the process replica, which opens the store
		// by URL. Its last change is checked as if made just now.
		unseen := faultstore.Write{Replica: childReplica + " (unseen)", Op: "put", Key: wr.Key, Value: wr.Before, Fault: -1}
		if wr.Before == nil {
			unseen.Op = "delete"
		}
		r.mu.Lock()
		k := r.killed
		r.mu.Unlock()
		if r.sc.kill == nil || (k != nil && k.at.Before(r.lastWrite)) {
			r.violate(Lineage, "the record changed outside the World after %s, with no process replica running", r.rel(r.lastWrite))
		}
		r.res.Unseen++
		// It may have happened at any moment since the last write seen:
		// judged at the earliest.
		r.follow(unseen, r.lastWrite.Add(time.Nanosecond))
	}
	r.follow(wr, time.Now())
}

// follow checks one write, made at, and moves the history on.
func (r *run) follow(wr faultstore.Write, at time.Time) {
	r.lastWrite = at
	who := wr.Replica
	if who == "" {
		who = "world"
	}
	told := ""
	if wr.Fault >= 0 {
		told = ", caller told " + wr.Fault.String()
	}
	r.storedVal = bytes.Clone(wr.Value)
	w := storeWrite{at: at, who: who, gen: -1, told: wr.Fault}
	defer func() {
		r.mu.Lock()
		r.writes = append(r.writes, w)
		r.mu.Unlock()
	}()
	if wr.Op == "delete" {
		r.storedGen = -1
		r.note(who, "store: delete applied"+told, false)
		return
	}
	rec, err := storage.DecodeRecord(wr.Value)
	if err != nil {
		r.violate(RecordIntact, "%s wrote a record that does not decode", who)
		return
	}
	g, ok := r.srv.GrantOf(rec.RefreshToken.Reveal())
	switch {
	case !ok:
		r.violate(Lineage, "at %s %s wrote a refresh token the server never issued", r.rel(at), who)
		return
	case r.storedGen >= 0 && g.Generation < r.storedGen:
		w.backward = true
		r.violate(Lineage, "at %s %s wrote generation %d over generation %d%s", r.rel(at), who, g.Generation, r.storedGen, told)
	case r.storedGen < 0 && g.Generation < r.maxGen:
		// Judged at the end (see judgeOlderPutBacks): after the grant was
		// lost for good it changes nothing.
		w.backward = true
		r.mu.Lock()
		r.olderBacks = append(r.olderBacks, putBack{at: w.at, who: who, family: g.Family, gen: g.Generation, over: r.maxGen})
		r.mu.Unlock()
		r.note(who, fmt.Sprintf("store: generation %d put back into an empty store, where generation %d had been%s", g.Generation, r.maxGen, told), true)
	case r.storedGen < 0 && g.Generation < g.Current:
		// The store lost the record while a rotation was in flight and a
		// replica put back the newest generation it knew, which the
		// server had already rotated: with the record went the lease,
		// and nothing tells the fleet that this token is spent.
		// Whether that is the library's doing is judged at the end
		// (see judgePutBacks), once it is known whether the rotation's
		// answer reached its client.
		r.mu.Lock()
		r.putBacks = append(r.putBacks, putBack{at: w.at, who: who, family: g.Family, gen: g.Generation})
		r.mu.Unlock()
		r.note(who, fmt.Sprintf("store: generation %d put back into an empty store, already rotated (the wipe took the lease with it)", g.Generation), true)
	}
	w.gen, w.lease = g.Generation, rec.Lease != nil
	lease := "no lease"
	if rec.Lease != nil {
		lease = "lease"
	}
	r.note(who, fmt.Sprintf("store: put applied: generation %d, %s%s", g.Generation, lease, told), false)
	r.storedGen, r.maxGen = g.Generation, max(r.maxGen, g.Generation)
}

// replica is one simulated process: a faulty store connection and, over
// its life, one Credentials after another (a close and a restart make a
// new one, as a restarted process would).
type replica struct {
	r    *run
	plan replicaPlan
	fs   *faultstore.Adapter

	mu  sync.Mutex
	c   *credentials.Credentials
	gen int // incarnation
}

func (rep *replica) newCredentials() *credentials.Credentials {
	p := rep.plan
	offset := p.clock
	c, err := credentials.New(credentials.Config{
		// A named store, so that the replica keeps a recovery journal:
		// one directory per machine, which its next Credentials (a
		// restarted process) and the other replicas of its machine replay.
		Store:          storage.NewNamedStore(fmt.Sprintf("sim+%s://seed-%d", rep.r.o.Store, rep.r.sc.seed), rep.fs),
		JournalDir:     filepath.Join(rep.r.journals, p.machine),
		Profile:        profile,
		HTTPClient:     &http.Client{Transport: &transport{r: rep.r, name: p.name}},
		Skew:           p.skew,
		LeaseTTL:       p.leaseTTL,
		RefreshTimeout: p.refreshTimeout,
		PollInterval:   p.poll,
		MaxRetries:     p.maxRetries,
		RetryBackoff:   p.retryBackoff,
		Logger:         rep.r.logger.With("replica", p.name),
		Now:            func() time.Time { return time.Now().Add(offset) },
	})
	if err != nil {
		rep.r.t.Fatalf("sim: replica %s: %v", p.name, err)
	}
	rep.mu.Lock()
	rep.c = c
	rep.gen++
	rep.mu.Unlock()
	return c
}

// flush writes what the replica holds back, bounded by a second.
func (rep *replica) flush() {
	rep.mu.Lock()
	c := rep.c
	rep.mu.Unlock()
	if c == nil {
		return
	}
	defer rep.r.recoverPanic(rep.plan.name, "Flush")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		fmt.Fprintf(rep.r.logs, "sim: caller error: Flush: %v\n", err)
	}
}

func (rep *replica) close() {
	rep.mu.Lock()
	c := rep.c
	rep.c = nil
	rep.mu.Unlock()
	if c != nil {
		defer rep.r.recoverPanic(rep.plan.name, "Close")
		c.Close()
	}
}

// recoverPanic turns a panic of a library call into a NoPanic violation,
// so that one bug does not end every other run in the binary.
func (r *run) recoverPanic(who, op string) {
	if x := recover(); x != nil {
		r.note(who, fmt.Sprintf("%s panicked", op), true)
		r.violate(NoPanic, "%s: %s panicked: %v", who, op, x)
	}
}

// run drives the replica through the load phase: callers, a close and a
// restart, a partition, as its plan says.
func (rep *replica) run() {
	r, p := rep.r, rep.plan
	rnd := rand.New(rand.NewPCG(p.seed, 3))
	sleepUntil(r.start.Add(p.start))
	end := r.start.Add(r.o.Duration)

	if p.partition.to > 0 {
		go func() {
			sleepUntil(r.start.Add(p.partition.from))
			rep.fs.Partition(true)
			r.note(p.name, "partitioned", true)
			sleepUntil(r.start.Add(p.partition.to))
			rep.fs.Partition(false)
			r.note(p.name, "partition healed", true)
		}()
	}
	phases := []time.Time{end}
	if p.closeAt > 0 && p.start < p.closeAt {
		phases = []time.Time{r.start.Add(p.closeAt), end}
	}
	if late := time.Since(r.start.Add(p.start)); late > 100*time.Millisecond {
		// A starved machine: give the replica at least half a run, so
		// that the run is not void.
		r.note(p.name, fmt.Sprintf("started %v late (a starved machine)", late.Round(time.Millisecond)), false)
		if least := time.Now().Add(r.o.Duration / 2); end.Before(least) {
			end = least
		}
	}
	for i, until := range phases {
		c := rep.newCredentials()
		ctx, cancel := context.WithDeadline(context.Background(), until)
		var wg sync.WaitGroup
		for g := range p.goroutines {
			seed := rnd.Uint64()
			wg.Go(func() { rep.caller(ctx, c, fmt.Sprintf("%s.%d", p.name, g), seed) })
		}
		<-ctx.Done()
		cancel()
		if i < len(phases)-1 {
			// Close while calls may be in flight, as a process shutting
			// down would; its callers see errors from here on.
			r.note(p.name, "Close", true)
			rep.close()
			wg.Wait()
			time.Sleep(p.restartAfter)
			r.note(p.name, "restarted with a fresh Credentials", true)
			continue
		}
		wg.Wait()
	}
}

// caller asks for tokens on a seeded schedule, checking every token it is
// handed at the server.
func (rep *replica) caller(ctx context.Context, c *credentials.Credentials, name string, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, 4))
	var last *credentials.Token
	for ctx.Err() == nil {
		if err := backoff.Sleep(ctx, time.Duration(rnd.Int64N(int64(20*time.Millisecond)))); err != nil {
			return
		}
		op := "Token"
		if last != nil && rnd.Float64() < 0.02 {
			op = "Refresh"
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		before := time.Now()
		tok, err := rep.call(cctx, c, op, last)
		after := time.Now()
		cancel()
		if err == errPanicked {
			continue
		}
		if err != nil {
			rep.r.callerError(op, err, ctx.Err() != nil)
			continue
		}
		rep.r.checkHandout(rep.plan.name, tok, before, after)
		last = tok
	}
}

func (rep *replica) call(ctx context.Context, c *credentials.Credentials, op string, last *credentials.Token) (tok *credentials.Token, err error) {
	err = errPanicked
	defer rep.r.recoverPanic(rep.plan.name, op)
	if op == "Token" {
		return c.Token(ctx)
	}
	return c.Refresh(ctx, last)
}

var errPanicked = errors.New("sim: the call panicked")

// settle waits, after the faults stopped, until the store holds the
// server's current refresh token and has kept it for a while (replicas
// flushing a held-back write get their chance), or 3 s pass.
func (r *run) settle() {
	const quiet = 300 * time.Millisecond
	deadline := time.Now().Add(3 * time.Second)
	var since time.Time
	for time.Now().Before(deadline) {
		ok := false
		if rec, _, err := r.clean.Load(context.Background(), profile); err == nil {
			cur, live := r.srv.CurrentRefresh(r.seedRT)
			ok = live && rec.RefreshToken.Reveal() == cur
		}
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= quiet:
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// transport tags requests with the replica's name and a request id, so
// that the schedule can say who made each endpoint call and the checks can
// tell whether the client read the whole answer: a server that sent it is
// not a client that got it (the client's timeout may strike in between).
type transport struct {
	r    *run // nil in the process replica
	name string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(replicaHdr, t.name)
	if t.r == nil {
		return http.DefaultTransport.RoundTrip(req)
	}
	id := t.r.reqSeq.Add(1)
	req.Header.Set(requestHdr, strconv.FormatInt(id, 10))
	t.r.mu.Lock()
	t.r.sentAt[id] = time.Now()
	t.r.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.r.mu.Lock()
		t.r.gaveUp[id] = time.Now()
		t.r.ended[id] = time.Now()
		t.r.mu.Unlock()
	}
	if err == nil {
		resp.Body = &trackedBody{ReadCloser: resp.Body, done: func(read bool) {
			t.r.mu.Lock()
			t.r.received[id] = t.r.received[id] || read
			if _, ok := t.r.ended[id]; !ok {
				t.r.ended[id] = time.Now()
			}
			t.r.mu.Unlock()
		}}
	}
	return resp, err
}

// trackedBody calls done(true) when the body has been read to its end,
// done(false) when it fails or is closed first: either way the client is
// done with the call.
type trackedBody struct {
	io.ReadCloser
	done func(read bool)
	once sync.Once
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(func() { b.done(err == io.EOF) })
	}
	return n, err
}

func (b *trackedBody) Close() error {
	b.once.Do(func() { b.done(false) })
	return b.ReadCloser.Close()
}

// delivered reports whether the client read the whole answer to the
// token call numbered call.
func (r *run) delivered(call int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.requests[call]
	return ok && r.received[id]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// callerError counts an error a caller got. Errors are no invariant (a
// fault may well make a call fail); their text goes to the secret check.
func (r *run) callerError(op string, err error, ending bool) {
	fmt.Fprintf(r.logs, "sim: caller error: %s: %v\n", op, err)
	kind := "other"
	switch {
	case ending:
		kind = "at phase end"
	case errors.Is(err, credentials.ErrReauthRequired):
		kind = "reauth required"
	case errors.Is(err, context.DeadlineExceeded):
		kind = "timeout"
	case errors.Is(err, storage.ErrNotFound):
		kind = "profile not found"
	case errors.Is(err, storage.ErrUnavailable):
		kind = "store unavailable"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.res.CallerErrors == nil {
		r.res.CallerErrors = map[string]int{}
	}
	r.res.CallerErrors[kind]++
}

// schedule is the merged timeline of faults and harness events, relative
// to the start, for a failing run's report.
func (r *run) schedule(limit int) []string {
	type line struct {
		at time.Time
		s  string
	}
	var ls []line
	rel := func(t time.Time) string { return fmt.Sprintf("%+8.3fs", t.Sub(r.start).Seconds()) }
	for _, e := range r.world.Events() {
		if e.Kind == faultstore.Latency {
			continue
		}
		d := ""
		if e.Detail != "" {
			d = " (" + e.Detail + ")"
		}
		who := e.Replica
		if who == "" {
			who = "world"
		}
		ls = append(ls, line{e.At, fmt.Sprintf("%s %-6s store: %s %s #%d%s", rel(e.At), who, e.Kind, e.Op, e.Call, d)})
	}
	r.mu.Lock()
	callers := maps.Clone(r.callers)
	r.mu.Unlock()
	for _, e := range r.srv.RefreshLog() {
		who := callers[e.Call]
		if who == "" {
			who = "?"
		}
		s := fmt.Sprintf("%s %-6s endpoint: call %d presents generation %d: %s", rel(e.At), who, e.Call, e.Generation, e.Result)
		if e.Fault != 0 {
			s += ", fault " + e.Fault.String()
		}
		ls = append(ls, line{e.At, s})
	}
	r.mu.Lock()
	for _, m := range r.timeline {
		ls = append(ls, line{m.at, fmt.Sprintf("%s %-6s %s", rel(m.at), m.who, m.what)})
	}
	r.mu.Unlock()
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].at.Before(ls[j].at) })
	out := make([]string, 0, len(ls))
	for i, l := range ls {
		if i == limit {
			out = append(out, fmt.Sprintf("... %d more", len(ls)-limit))
			break
		}
		out = append(out, l.s)
	}
	return out
}

func (r *run) report() {
	res := r.res
	if res.Failed() || r.o.Verbose {
		var b strings.Builder
		fmt.Fprintf(&b, "%s store, %s\n", r.o.Store, r.sc)
		fmt.Fprintf(&b, "faults: %s\n", res.Faults)
		fmt.Fprintf(&b, "checks: %s\n", res.checks())
		for _, v := range res.Violations {
			fmt.Fprintf(&b, "VIOLATION %s\n", v)
		}
		for _, h := range res.Hints {
			fmt.Fprintf(&b, "LIKELY CAUSE %s\n", h)
		}
		fmt.Fprintf(&b, "replay: TOKENCACHE_SIM_SEED=%d go test -race -run 'TestSimulation' ./credentials/credentialstest/sim\n", res.Seed)
		b.WriteString("schedule:\n  " + strings.Join(r.schedule(400), "\n  "))
		if res.Failed() {
			// The replicas' debug logs say why; a failure seen in a long
			// run under load may not come back when replayed.
			b.WriteString("\nlogs:\n" + string(r.logs.Bytes()))
		}
		if res.Failed() {
			r.t.Errorf("sim: seed %d failed:\n%s", res.Seed, b.String())
		} else {
			r.t.Log(b.String())
		}
	}
}
