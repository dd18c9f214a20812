package sim_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tokencache/tokencache/credentials/credentialstest/sim"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/file"
	"github.com/tokencache/tokencache/storage/memory"
	"github.com/tokencache/tokencache/storage/sqlite"
)

// TestMain lets the seeds run 8 at a time even on a 2-core machine: a run
// mostly waits on token lifetimes and timeouts. A -test.parallel given on
// the command line wins.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}

// store is an inner adapter the simulation runs over.
type store struct {
	name string
	// open returns the adapter for dir; url, when set, opens the same
	// store from another process.
	open func(t testing.TB, dir string) storage.Adapter
	url  func(dir string) string
}

var stores = []store{
	{name: "memory", open: func(testing.TB, string) storage.Adapter { return memory.New() }},
	{name: "file",
		open: func(_ testing.TB, dir string) storage.Adapter {
			return file.New(filepath.Join(dir, "credentials.json"))
		},
		url: func(dir string) string { return "file://" + filepath.Join(dir, "credentials.json") }},
	{name: "sqlite",
		open: func(t testing.TB, dir string) storage.Adapter {
			a, err := sqlite.Open(context.Background(), filepath.Join(dir, "tokens.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		url: func(dir string) string { return "sqlite://" + filepath.Join(dir, "tokens.db") }},
}

// TestSimulation runs the fault-injection simulation over seeds 1..40 (or
// TOKENCACHE_SIM_SEEDS of them; TOKENCACHE_SIM_SEED=N runs seed N alone,
// verbosely), each over the memory, file or SQLite store in turn, and
// prints a summary of the faults injected and the invariants checked.
func TestSimulation(t *testing.T) {
	first, n, verbose := int64(1), int64(40), false
	if v := os.Getenv("TOKENCACHE_SIM_SEEDS"); v != "" {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil || x < 1 {
			t.Fatalf("TOKENCACHE_SIM_SEEDS=%q: want a positive number", v)
		}
		n = x
	}
	if v := os.Getenv("TOKENCACHE_SIM_SEED"); v != "" {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("TOKENCACHE_SIM_SEED=%q: want a number", v)
		}
		first, n, verbose = x, 1, true
	}
	var sum sim.Summary
	t.Run("seeds", func(t *testing.T) {
		for seed := first; seed < first+n; seed++ {
			st := stores[int(uint64(seed)%uint64(len(stores)))]
			t.Run(fmt.Sprintf("seed%d-%s", seed, st.name), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				o := sim.Options{
					Store:   st.name,
					Open:    func(t testing.TB) storage.Adapter { return st.open(t, dir) },
					Verbose: verbose,
				}
				if st.url != nil {
					o.Process = &sim.ProcessOptions{URL: func(testing.TB) string { return st.url(dir) }}
				}
				sum.Add(sim.Run(t, seed, o))
			})
		}
	})
	if sim.InChild() {
		return
	}
	t.Log("\n" + sum.String())
}
