package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
)

// A scenario is everything a seed decides before the run starts: the
// fleet, its settings, the fault rates, and when replicas close, restart,
// get partitioned or are killed. Faults drawn per call (store and token
// endpoint) come from sources seeded from it too, in call order.
type scenario struct {
	seed     int64
	tier     tier
	grace    time.Duration // the server's reuse grace period
	skewed   bool          // replica clocks differ by up to ±5 min
	replicas []replicaPlan

	serverFault float64       // per refresh call
	slowReply   time.Duration // how long a FaultSlowReply holds the answer
	evict       float64       // per clean refresh call: evict the profile as it arrives
	restart     float64       // per clean refresh call: the store restarts empty

	kill *killPlan // a replica process killed at the server; nil for none
}

type tier int

const (
	clean tier = iota // no faults at all: calls per expiry must be exactly 1
	mild
	heavy
)

func (t tier) String() string { return [...]string{"clean", "mild", "heavy"}[t] }

type replicaPlan struct {
	name           string
	leaseTTL       time.Duration
	refreshTimeout time.Duration
	skew           time.Duration // Config.Skew
	clock          time.Duration // offset of the replica's clock from the truth
	machine        string        // replicas on one machine share its clock and recovery journal
	poll           time.Duration
	retryBackoff   time.Duration
	maxRetries     int
	goroutines     int
	start          time.Duration // when the replica starts
	closeAt        time.Duration // 0: never; else close, then a fresh Credentials
	restartAfter   time.Duration
	partition      window // zero: none
	rates          faultstore.Rates
	seed           uint64 // for its store faults and its callers' schedules
}

type window struct{ from, to time.Duration }

// storeTimeout is the replica's Config.StoreTimeout: the library's default.
func (p replicaPlan) storeTimeout() time.Duration { return (p.leaseTTL - p.refreshTimeout) / 2 }

// storeRates are the replica's fault rates, and the store calls that count
// as slow (and are noted as faults, though not injected): those longer
// than the replica's store timeout, which then struck.
func (p replicaPlan) storeRates() faultstore.Rates {
	r := p.rates
	r.SlowAfter = p.storeTimeout()
	return r
}

// killPlan: an OS process replica forced to refresh, killed with SIGKILL
// while its request is at the server.
type killPlan struct {
	at    time.Duration
	stage oauthtest.Stage
}

// serverFaults are the token endpoint faults a scenario draws from. Invalid
// grant is left out: it is not a fault of the protocol but a verdict.
var serverFaults = []oauthtest.Fault{
	oauthtest.FaultServerError, oauthtest.FaultUnavailable, oauthtest.FaultTimeout,
	oauthtest.FaultMalformedJSON, oauthtest.FaultLateReply, oauthtest.FaultTruncatedAfterRotate,
	oauthtest.FaultSlowReply,
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

func newScenario(seed int64, o *Options) *scenario {
	r := rand.New(rand.NewPCG(uint64(seed), 0x7c5e_ed51))
	sc := &scenario{seed: seed}
	switch x := r.Float64(); {
	case x < 0.2:
		sc.tier = clean
	case x < 0.6:
		sc.tier = mild
	default:
		sc.tier = heavy
	}
	sc.grace = pick(r, 0, 30*time.Second)
	sc.slowReply = between(r, 100*time.Millisecond, 1200*time.Millisecond)
	sc.skewed = sc.tier != clean && r.Float64() < 0.2
	var storeRate float64
	switch sc.tier {
	case mild:
		storeRate, sc.serverFault, sc.evict, sc.restart = 0.02, 0.05, 0.03, 0.01
	case heavy:
		storeRate, sc.serverFault, sc.evict, sc.restart = 0.08, 0.2, 0.08, 0.03
	}
	n := 2 + r.IntN(4)
	for i := range n {
		lease := pick(r, 300*time.Millisecond, 500*time.Millisecond, 800*time.Millisecond, 1500*time.Millisecond)
		p := replicaPlan{
			name:           fmt.Sprintf("r%d", i),
			leaseTTL:       lease,
			refreshTimeout: time.Duration(float64(lease) * pick(r, 0.25, 0.33, 0.5, 0.9)),
			skew:           pick(r, 50*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond),
			poll:           between(r, 5*time.Millisecond, 30*time.Millisecond),
			retryBackoff:   between(r, 5*time.Millisecond, 15*time.Millisecond),
			maxRetries:     pick(r, -1, 1, 3),
			goroutines:     1 + r.IntN(3),
			start:          between(r, 0, 50*time.Millisecond),
			seed:           r.Uint64(),
		}
		if sc.skewed {
			p.clock = between(r, -5*time.Minute, 5*time.Minute)
		}
		if sc.tier != clean {
			if r.Float64() < 0.3 {
				p.closeAt = between(r, o.Duration/10, o.Duration*9/10)
				p.restartAfter = between(r, 0, 50*time.Millisecond)
			}
			if r.Float64() < 0.2 {
				from := between(r, 0, o.Duration*8/10)
				p.partition = window{from, from + between(r, 50*time.Millisecond, 400*time.Millisecond)}
				if p.closeAt > 0 && r.Float64() < 0.5 {
					// Close while cut off from the store: what a rotated
					// token held in memory is most at risk from.
					p.closeAt = between(r, p.partition.from, p.partition.to)
				}
			}
			p.rates = faultstore.Rates{
				Latency: storeRate * 3, MaxLatency: 20 * time.Millisecond,
				FailBefore: storeRate, FailAfter: storeRate, DropReply: storeRate / 2,
				Hang: p.refreshTimeout,
			}
		}
		p.machine = p.name
		if i > 0 && sc.tier != clean && r.Float64() < 0.3 {
			// Another process on the machine of the one before: each
			// may replay the other's journal entries while it runs.
			prev := sc.replicas[i-1]
			p.machine, p.clock = prev.machine, prev.clock
		}
		sc.replicas = append(sc.replicas, p)
	}
	if o.Process != nil && sc.tier != clean && r.Float64() < o.Process.Rate {
		sc.kill = &killPlan{at: between(r, o.Duration/5, o.Duration/2), stage: pick(r, oauthtest.BeforeRotate, oauthtest.AfterRotate)}
	}
	return sc
}

func (sc *scenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s, %d replicas, grace %v, server faults %.2f/call (slow reply %v), evict %.2f, restart-empty %.2f",
		sc.seed, sc.tier, len(sc.replicas), sc.grace, sc.serverFault, sc.slowReply, sc.evict, sc.restart)
	if sc.skewed {
		b.WriteString(", clocks skewed")
	}
	if sc.kill != nil {
		fmt.Fprintf(&b, ", SIGKILL of a process replica %s at %v", sc.kill.stage, sc.kill.at)
	}
	for _, p := range sc.replicas {
		fmt.Fprintf(&b, "\n  %s: lease %v, refresh timeout %v, skew %v, clock %+v, poll %v, retries %d, backoff %v, %d callers, start %v",
			p.name, p.leaseTTL, p.refreshTimeout, p.skew, p.clock.Round(time.Second), p.poll, p.maxRetries, p.retryBackoff, p.goroutines, p.start)
		if p.machine != p.name {
			fmt.Fprintf(&b, ", on %s's machine", p.machine)
		}
		if p.closeAt > 0 {
			fmt.Fprintf(&b, ", close at %v (restart %v later)", p.closeAt, p.restartAfter)
		}
		if p.partition.to > 0 {
			fmt.Fprintf(&b, ", partitioned %v..%v", p.partition.from, p.partition.to)
		}
		if p.rates != (faultstore.Rates{}) {
			fmt.Fprintf(&b, ", store faults before/after/drop %.2f/%.2f/%.2f", p.rates.FailBefore, p.rates.FailAfter, p.rates.DropReply)
		}
	}
	return b.String()
}
