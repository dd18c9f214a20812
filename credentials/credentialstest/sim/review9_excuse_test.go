package sim

// Hostile review 9 of the checks: the wipe excuse as widened for a holder
// paused past its lease.

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage/driver"
)

// The store loses the profile during r0's call; r0 gets the successor.
// A partition then keeps r0 from the store to the end of its lease: every
// write of the successor is refused (none may have landed), so the library
// must put it back once the store answers, lease or not. Were it never to
// (a library that drops a held successor at the end of its lease), the
// check must say so. As widened, it excuses the loss on any put of r0's
// that may have landed at any time after the call: here one a second
// after the lease ended, by a process that was never paused, and nothing
// ties that put to the successor (a later flight's lease take, a release,
// a write of whatever r0 held then). Before the widening, a put after the
// lease did not count and the loss was reported.
func TestReview9LaterMaybeLandedPutDoesNotExcuseAnUnrestoredWipe(t *testing.T) {
	r, p := review7Run(t)
	now := time.Now()
	r.start = now.Add(-4 * time.Second)
	leased := now.Add(-3 * time.Second) // a 1.5 s lease: over 1.5 s ago
	p.partition = window{from: 1200 * time.Millisecond, to: 2600 * time.Millisecond}
	r.sc.replicas[0] = p
	r.writes = []storeWrite{{at: leased, who: "r0", gen: 1, lease: true}}
	r.wipes = []wipe{{at: now.Add(-2950 * time.Millisecond), who: "r0", req: 10}}
	r.requests[1], r.received[10], r.ended[10] = 10, true, now.Add(-2850*time.Millisecond)
	log := []oauthtest.RefreshEvent{{Call: 1, At: now.Add(-2900 * time.Millisecond), Generation: 1, Result: oauthtest.ResultRotated, Answered: true}}

	// One put of r0's, a second and a half after its lease ended, whose
	// reply was lost.
	a := r.world.Adapter("r0", rand.New(rand.NewPCG(9, 9)), faultstore.Rates{DropReply: 1, Hang: time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	a.Put(ctx, profile, []byte("{}"), driver.Condition{})
	if len(r.world.Events()) == 0 {
		t.Fatal("no fault was injected")
	}
	if r.wipeOutlastedLease(log) {
		t.Fatal("a successor none of whose writes may have landed by the end of the lease, never restored, is excused by an unrelated put 1.5 s after the lease")
	}
}
