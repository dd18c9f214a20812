package drivertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tokencache/tokencache/internal/reexec"
	"github.com/tokencache/tokencache/storage/driver"
)

const childEnv = "TOKENCACHE_STORAGETEST_CHILD"

// RunProcesses checks exactly-one-winner conditional puts across OS
// processes, for stores shared through the file system: procs copies of the
// test binary each make increments read-modify-write increments on one key,
// retrying on conflict, and the counter must end at procs*increments.
//
// The children re-run the calling test, so call RunProcesses from a test
// that reaches it without side effects first; in a child it does its share
// of the work and returns.
func RunProcesses(t *testing.T, storeURL string, procs, increments int) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(t, spec)
		return
	}
	ctx := context.Background()
	a, err := driver.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	key := randomPrefix() + "processes"
	mustPut(t, a, key, obj(key, 0), driver.IfAbsent())

	var wg sync.WaitGroup
	outs := make([][]byte, procs)
	errs := make([]error, procs)
	for i := range procs {
		cmd := reexec.Command(ctx, t.Name(), childEnv, fmt.Sprintf("%d|%s|%s", increments, key, storeURL))
		wg.Go(func() { outs[i], errs[i] = cmd.CombinedOutput() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
	}
	v, _ := mustGet(t, a, key)
	if got, want := counter(t, v), procs*increments; got != want {
		t.Fatalf("counter = %d after %d processes x %d increments, want %d", got, procs, increments, want)
	}
}

func runChild(t *testing.T, spec string) {
	parts := strings.SplitN(spec, "|", 3)
	n, err := strconv.Atoi(parts[0])
	if len(parts) != 3 || err != nil {
		t.Fatalf("bad %s=%q", childEnv, spec)
	}
	key, storeURL := parts[1], parts[2]
	ctx := context.Background()
	a, err := driver.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for done := 0; done < n; {
		v, rev, err := a.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var c struct{ N int }
		if err := json.Unmarshal(v, &c); err != nil {
			t.Fatal(err)
		}
		_, err = a.Put(ctx, key, obj(key, c.N+1), driver.IfMatch(rev))
		switch {
		case err == nil:
			done++
		case !errors.Is(err, driver.ErrConflict):
			t.Fatal(err)
		}
	}
}
