package sim

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Environment variables that choose the seeds RunSeeds runs.
const (
	// EnvSeeds is how many seeds to run (default: what the test asks).
	EnvSeeds = "TOKENCACHE_SIM_SEEDS"
	// EnvFirst is the first seed (default 1), to split a long run.
	EnvFirst = "TOKENCACHE_SIM_FIRST"
	// EnvSeed replays one seed, verbosely.
	EnvSeed = "TOKENCACHE_SIM_SEED"
)

// RunSeeds runs seeds first..first+n-1 (n is the default count; the
// environment can change both, see EnvSeeds, EnvFirst and EnvSeed), one
// parallel subtest each with the Options that options returns, and then
// logs and returns the summary. A replica process started by a run (see
// Options.Process) does only its part and gets nil.
//
// Runs mostly wait on token lifetimes and timeouts, so a test binary may
// run many at once even on few cores: raise -test.parallel (the sim
// package's own tests run 8 at a time).
func RunSeeds(t *testing.T, n int64, options func(t *testing.T, seed int64) Options) *Summary {
	first, verbose := int64(1), false
	num := func(name string) (int64, bool) {
		v := os.Getenv(name)
		if v == "" {
			return 0, false
		}
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want a number", name, v)
		}
		return x, true
	}
	if x, ok := num(EnvSeeds); ok {
		if x < 1 {
			t.Fatalf("%s=%d: want a positive number", EnvSeeds, x)
		}
		n = x
	}
	if x, ok := num(EnvFirst); ok {
		first = x
	}
	if x, ok := num(EnvSeed); ok {
		first, n, verbose = x, 1, true
	}
	sum := &Summary{}
	t.Run("seeds", func(t *testing.T) {
		for seed := first; seed < first+n; seed++ {
			t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
				t.Parallel()
				o := options(t, seed)
				o.Verbose = o.Verbose || verbose
				sum.Add(Run(t, seed, o))
			})
		}
	})
	if InChild() {
		return nil
	}
	t.Log("\n" + sum.String())
	return sum
}
