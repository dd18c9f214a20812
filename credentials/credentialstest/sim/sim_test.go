package sim_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokencache/tokencache/credentials/credentialstest/sim"
	"github.com/tokencache/tokencache/storage/driver"
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
	open func(t testing.TB, dir string) driver.Adapter
	url  func(dir string) string
}

var stores = []store{
	{name: "memory", open: func(testing.TB, string) driver.Adapter { return memory.New(nil) }},
	{name: "file",
		open: func(t testing.TB, dir string) driver.Adapter {
			a, err := file.New(filepath.Join(dir, "credentials.json"), nil)
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		url: func(dir string) string { return "file://" + filepath.Join(dir, "credentials.json") }},
	{name: "sqlite",
		open: func(t testing.TB, dir string) driver.Adapter {
			a, err := sqlite.Open(context.Background(), filepath.Join(dir, "tokens.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		url: func(dir string) string { return "sqlite://" + filepath.Join(dir, "tokens.db") }},
}

// TestSimulation runs the fault-injection simulation over seeds 1..40 (see
// sim.RunSeeds for TOKENCACHE_SIM_SEEDS, TOKENCACHE_SIM_FIRST and
// TOKENCACHE_SIM_SEED), each over the memory, file or SQLite store in turn,
// and logs a summary of the faults injected and the invariants checked.
func TestSimulation(t *testing.T) {
	sim.RunSeeds(t, 40, func(t *testing.T, seed int64) sim.Options {
		st := stores[int(uint64(seed)%uint64(len(stores)))]
		dir := t.TempDir()
		o := sim.Options{
			Store: st.name,
			Open:  func(t testing.TB) driver.Adapter { return st.open(t, dir) },
		}
		if st.url != nil {
			o.Process = &sim.ProcessOptions{URL: func(testing.TB) string { return st.url(dir) }}
		}
		return o
	})
}
