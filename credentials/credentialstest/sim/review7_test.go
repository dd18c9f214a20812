package sim

// Hostile review 7 of the checks: the excuses for a holder cut off from
// the store and for a wipe that outlasted a lease. Each test builds the
// facts of a run by hand and fails on the checks as reviewed: they
// excused a library that did not retry a failed write (the background
// flush removed, over 300 seeds: reuses counted as "could not store" and
// missing records as "wipes unrestored", no failure) or did not restore.

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage/memory"
)

// review7Run is a run with no facts yet, its world over a memory store,
// and one replica r0: a 1.5 s lease, a 375 ms refresh timeout (so a
// 562 ms store timeout).
func review7Run(t *testing.T) (*run, replicaPlan) {
	p := replicaPlan{name: "r0", leaseTTL: 1500 * time.Millisecond, refreshTimeout: 375 * time.Millisecond}
	r := &run{t: t, o: &Options{}, sc: &scenario{seed: 7, replicas: []replicaPlan{p}},
		callers: map[int64]string{}, requests: map[int64]int64{}, received: map[int64]bool{}, ended: map[int64]time.Time{},
		gaveUp: map[int64]time.Time{}, sentAt: map[int64]time.Time{}}
	r.res = &Result{}
	r.start = time.Now().Add(-2 * time.Second)
	r.world = faultstore.NewWorld(memory.New(nil))
	t.Cleanup(func() { r.world.Close() })
	return r, p
}

// fault makes replica who's store meet one fault of the kind rates draw,
// now.
func fault(t *testing.T, r *run, who string, rates faultstore.Rates) {
	a := r.world.Adapter(who, rand.New(rand.NewPCG(7, 7)), rates)
	for range 100 {
		a.Get(t.Context(), profile)
		if len(r.world.Events()) > 0 {
			return
		}
	}
	t.Fatal("no fault was injected")
}

// A holder that got the successor 900 ms into a 1.5 s lease, met one
// failed read at once, and then had 600 ms without trouble: a library
// that keeps trying (every quarter lease at most) stores it in time. Not
// cut off.
func TestReview7OneEarlyFaultDoesNotCutAHolderOff(t *testing.T) {
	r, p := review7Run(t)
	fault(t, r, "r0", faultstore.Rates{FailBefore: 1})
	e := oauthtest.RefreshEvent{Call: 1, At: time.Now().Add(-900 * time.Millisecond), Generation: 1}
	if end, ok := r.holderCutOff(e, nil, map[int64]string{1: "r0"}, map[string]replicaPlan{"r0": p}); ok {
		t.Fatalf("holder cut off at %s by one fault with %v of its lease left", r.rel(end), p.leaseTTL*2/5)
	}
}

// A millisecond of injected latency on a read cuts no holder off: the
// call went through, well before the lease ended.
func TestReview7ShortLatencyDoesNotCutAHolderOff(t *testing.T) {
	r, p := review7Run(t)
	fault(t, r, "r0", faultstore.Rates{Latency: 1, MaxLatency: time.Millisecond})
	e := oauthtest.RefreshEvent{Call: 1, At: time.Now().Add(-1400 * time.Millisecond), Generation: 1}
	if end, ok := r.holderCutOff(e, nil, map[int64]string{1: "r0"}, map[string]replicaPlan{"r0": p}); ok {
		t.Fatalf("holder cut off at %s by a millisecond of latency", r.rel(end))
	}
}

// The store loses the profile during a call whose successor reached its
// client: the holder restores it, in its lease or later (a write that
// certainly did not land may go back at any time; one that may have
// landed did land, and no record goes missing). A fault after the call
// excuses nothing.
func TestReview7WipeDuringASuccessfulCallIsNotExcused(t *testing.T) {
	r, _ := review7Run(t)
	now := time.Now()
	r.writes = []storeWrite{{at: now.Add(-100 * time.Millisecond), who: "r0", gen: 1, lease: true}}
	r.wipes = []wipe{{at: now.Add(-50 * time.Millisecond), who: "r0", req: 10}}
	r.requests[1], r.received[10], r.ended[10] = 10, true, now.Add(-40*time.Millisecond)
	log := []oauthtest.RefreshEvent{{Call: 1, At: now.Add(-50 * time.Millisecond), Generation: 1, Result: oauthtest.ResultRotated, Answered: true}}
	fault(t, r, "r0", faultstore.Rates{FailBefore: 1})
	if r.wipeOutlastedLease(log) {
		t.Fatal("a wipe during a call whose successor its client got is excused")
	}
}

// A failed call with 400 ms of its lease left and no store trouble after
// it: a release takes milliseconds, so the record must be back. (Less
// than the 562 ms store timeout is no excuse: each try of the release is
// bounded by the lease, not the timeout.)
func TestReview7WipeWithTimeLeftAndNoTroubleIsNotExcused(t *testing.T) {
	r, _ := review7Run(t)
	now := time.Now()
	r.writes = []storeWrite{{at: now.Add(-1100 * time.Millisecond), who: "r0", gen: 1, lease: true}}
	r.wipes = []wipe{{at: now.Add(-50 * time.Millisecond), who: "r0", req: 10}}
	r.requests[1], r.ended[10] = 10, now
	log := []oauthtest.RefreshEvent{{Call: 1, At: now.Add(-50 * time.Millisecond), Generation: 1, Result: oauthtest.ResultFault, Fault: oauthtest.FaultServerError}}
	if r.wipeOutlastedLease(log) {
		t.Fatal("a wipe with 400 ms of the lease left and no store trouble is excused")
	}
}
