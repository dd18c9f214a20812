package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// The seed alone decides the scenario.
func TestSameSeedSameScenario(t *testing.T) {
	o := &Options{Process: &ProcessOptions{}}
	o.defaults()
	for seed := int64(1); seed <= 50; seed++ {
		a, b := newScenario(seed, o).String(), newScenario(seed, o).String()
		if a != b {
			t.Fatalf("seed %d gave two scenarios:\n%s\n%s", seed, a, b)
		}
		if c := newScenario(seed+1, o).String(); a[strings.Index(a, ":"):] == c[strings.Index(c, ":"):] {
			t.Fatalf("seeds %d and %d gave the same scenario", seed, seed+1)
		}
	}
}

// recorder keeps what a run reports instead of failing the test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func quiet(sc *scenario) {
	sc.tier, sc.grace, sc.skewed, sc.kill = clean, 0, false, nil
	sc.serverFault, sc.evict, sc.restart = 0, 0, 0
	for i := range sc.replicas {
		p := &sc.replicas[i]
		p.clock, p.closeAt, p.partition, p.rates = 0, 0, window{}, faultstore.Rates{}
	}
}

// The checks catch a writer that puts a spent refresh token back: the
// lineage rule breaks at once, the server detects the reuse, and the
// report names the seed.
func TestChecksCatchASpentTokenWrittenBack(t *testing.T) {
	rec := &recorder{TB: t}
	res := Run(rec, 1, Options{
		Open:   func(testing.TB) driver.Adapter { return memory.New(nil) },
		Store:  "memory",
		adjust: quiet,
		sabotage: func(r *run) {
			sleepUntil(r.start.Add(r.o.Duration / 3))
			// Below the Store, which refuses such a write: a tool that
			// writes the store its own way, or an older version of ours.
			rogueWrite(t, r, func(rec *storage.Record) { rec.RefreshToken = secret.Secret(r.seedRT) })
		},
	})
	if res.Broken[Lineage] == 0 || res.Broken[NoReuse] == 0 || res.Broken[FinalTokenCurrent] == 0 {
		t.Fatalf("violations %v; want lineage, reuse and final-token ones", res.Broken)
	}
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "seed 1 failed") || !strings.Contains(rec.errs[0], "TOKENCACHE_SIM_SEED=1") {
		t.Fatalf("report %q", rec.errs)
	}
}

// ... and a run without faults passes, each generation presented once.
func TestQuietRunPasses(t *testing.T) {
	res := Run(t, 2, Options{
		Open:   func(testing.TB) driver.Adapter { return memory.New(nil) },
		adjust: quiet,
	})
	// A loaded machine may starve the process (a stall): the generations
	// it touched are not clean, and rightly so.
	if res.Failed() || res.CleanGens == 0 || (res.Faults.Stalls == 0 && res.CleanGens != res.Generations) || res.Handouts == 0 {
		t.Fatalf("result %+v", res)
	}
}

// The checks catch a token handed out that the server never issued (a
// forged or corrupted access token in the store).
func TestChecksCatchAnInvalidHandout(t *testing.T) {
	rec := &recorder{TB: t}
	res := Run(rec, 3, Options{
		Open:   func(testing.TB) driver.Adapter { return memory.New(nil) },
		adjust: quiet,
		sabotage: func(r *run) {
			sleepUntil(r.start.Add(r.o.Duration / 3))
			rogueWrite(t, r, func(rec *storage.Record) {
				rec.AccessToken, rec.Expiry = "forged-access-token", time.Now().Add(time.Hour)
			})
		},
	})
	if res.Broken[ValidHandout] == 0 || res.Broken[Lineage] != 0 {
		t.Fatalf("violations %v; want valid-handout ones only", res.Broken)
	}
}

// rogueWrite changes the stored record with a read-modify-write of its
// own, through a wrapper of the run's World so that the checks see it.
func rogueWrite(t *testing.T, r *run, change func(*storage.Record)) {
	ctx := context.Background()
	a := r.world.Adapter("rogue", rand.New(rand.NewPCG(1, 1)), faultstore.Rates{})
	for {
		b, rev, err := a.Get(ctx, profile)
		if err != nil {
			t.Errorf("rogue read: %v", err)
			return
		}
		rec, err := storage.DecodeRecord(b)
		if err != nil {
			t.Errorf("rogue decode: %v", err)
			return
		}
		change(rec)
		if b, err = storage.EncodeRecord(rec); err != nil {
			t.Errorf("rogue encode: %v", err)
			return
		}
		if _, err = a.Put(ctx, profile, b, driver.IfMatch(rev)); err == nil {
			return
		}
	}
}
