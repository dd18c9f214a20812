// Package dirwatchtest checks driver.Watcher implementations built on
// dirwatch where it matters: a waiter in one process woken by a write in
// another, and Close. The drivertest conformance suite covers the rest.
package dirwatchtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/reexec"
	"github.com/tokencache/tokencache/storage/driver"
)

const childEnv = "TOKENCACHE_DIRWATCHTEST_CHILD"

// Deadline bounds each Wait in CrossProcess. A polling fallback at the
// Store's usual intervals would also fit in it; what the test checks is
// that the adapter's own Wait returns nil, which only a watch can do.
const Deadline = time.Second

// CrossProcess checks that Wait wakes on a write made by another process:
// a copy of the test binary writes the key rounds times, each a little
// after the parent starts waiting, and the parent reports how long after
// the write it woke. The child re-runs the calling test, so call
// CrossProcess from a test that reaches it without side effects first.
func CrossProcess(t *testing.T, storeURL string, rounds int) {
	if spec := os.Getenv(childEnv); spec != "" {
		child(t, spec)
		return
	}
	ctx := context.Background()
	a, err := driver.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	w, ok := a.(driver.Watcher)
	if !ok {
		t.Fatalf("%T is not a driver.Watcher", a)
	}
	key := "dirwatchtest-" + randomHex()
	rev, err := a.Put(ctx, key, value(key, 0), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	probe, cancel := context.WithTimeout(ctx, time.Millisecond)
	err = w.Wait(probe, key, rev)
	cancel()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("cannot watch here: %v", err)
	}

	cctx, ccancel := context.WithTimeout(ctx, time.Minute)
	defer ccancel()
	cmd := reexec.Command(cctx, t.Name(), childEnv, key+"|"+storeURL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	toChild, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fromChild := bufio.NewScanner(out)
	line := func() string {
		for fromChild.Scan() {
			if l := fromChild.Text(); strings.HasPrefix(l, "dirwatchtest ") {
				return l
			}
		}
		toChild.Close()
		cmd.Wait()
		t.Fatalf("child ended early: %v\n%s", fromChild.Err(), stderr.String())
		return ""
	}
	if l := line(); l != "dirwatchtest ready" {
		t.Fatalf("child said %q", l)
	}

	var sinceStart, sinceEnd []time.Duration
	for round := 1; round <= rounds; round++ {
		fmt.Fprintf(toChild, "%d\n", round)
		wctx, cancel := context.WithTimeout(ctx, Deadline)
		err := w.Wait(wctx, key, rev)
		woke := time.Now()
		cancel()
		var n int
		var start, end int64
		if _, serr := fmt.Sscanf(line(), "dirwatchtest wrote %d %d %d", &n, &start, &end); serr != nil || n != round {
			t.Fatalf("round %d: child said something else (%v)", round, serr)
		}
		if err != nil {
			t.Fatalf("round %d: Wait for a write from another process: %v", round, err)
		}
		var got []byte
		got, rev, err = a.Get(ctx, key)
		var v struct{ N int }
		if err == nil {
			err = json.Unmarshal(got, &v)
		}
		if err != nil || v.N != round {
			t.Fatalf("round %d: after waking, Get = %s, %v", round, got, err)
		}
		sinceStart = append(sinceStart, woke.Sub(time.Unix(0, start)))
		sinceEnd = append(sinceEnd, woke.Sub(time.Unix(0, end)))
	}
	toChild.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	slices.Sort(sinceStart)
	slices.Sort(sinceEnd)
	med := func(ds []time.Duration) time.Duration { return ds[len(ds)/2] }
	t.Logf("woke after the other process's Put began: median %v, max %v; after it returned: median %v, max %v (%d rounds)",
		med(sinceStart), sinceStart[len(sinceStart)-1], med(sinceEnd), sinceEnd[len(sinceEnd)-1], rounds)
	// No tight bound: a loaded machine may be slow. Half the deadline
	// still tells a watch from a timeout.
	if worst := sinceStart[len(sinceStart)-1]; worst > Deadline/2 {
		t.Errorf("slowest wake-up %v after the write began", worst)
	}
}

// child writes value(key, n) for every n it reads, after a pause that lets
// the parent settle into Wait, and reports when its Put began and ended.
func child(t *testing.T, spec string) {
	key, storeURL, ok := strings.Cut(spec, "|")
	if !ok {
		t.Fatalf("bad %s=%q", childEnv, spec)
	}
	ctx := context.Background()
	a, err := driver.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	fmt.Println("dirwatchtest ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n int
		if _, err := fmt.Sscan(in.Text(), &n); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		if _, err := a.Put(ctx, key, value(key, n), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
		end := time.Now()
		fmt.Printf("dirwatchtest wrote %d %d %d\n", n, start.UnixNano(), end.UnixNano())
	}
}

// CloseWakes checks that Close wakes a waiter with driver.ErrClosed and
// leaves no goroutine behind, over a few adapters so that one leaked per
// adapter would stand out from the runtime's own comings and goings.
func CloseWakes(t *testing.T, open func(t *testing.T) driver.Adapter) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	const adapters = 5
	for range adapters {
		a := open(t)
		key := "dirwatchtest-" + randomHex()
		rev, err := a.Put(ctx, key, value(key, 0), driver.IfAbsent())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.(driver.Watcher).Wait(ctx, key, rev) }()
		select {
		case err := <-done:
			if errors.Is(err, errors.ErrUnsupported) {
				a.Close()
				t.Skipf("cannot watch here: %v", err)
			}
			t.Fatalf("Wait without a change returned %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, driver.ErrClosed) {
				t.Fatalf("Wait woken by Close: %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake Wait")
		}
		if err := a.(driver.Watcher).Wait(ctx, key, rev); !errors.Is(err, driver.ErrClosed) {
			t.Fatalf("Wait after Close: %v, want ErrClosed", err)
		}
	}
	const slack = 2
	var now int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if now = runtime.NumGoroutine(); now <= before+slack || time.Now().After(deadline) {
			break
		}
	}
	if now > before+slack {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before %d adapters were opened, waited on and closed, %d after:\n%s",
			before, adapters, now, buf[:runtime.Stack(buf, true)])
	}
}

func value(key string, n int) []byte { return fmt.Appendf(nil, `{"profile":%q,"n":%d}`, key, n) }

func randomHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
