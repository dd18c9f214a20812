package credentials

import (
	"context"
	"testing"
	"time"
)

// review3: a flight queued for a slot when the endpoint asks for a pause
// (429 Retry-After) must still honour the pause. acquire checks the
// hold-off only before it queues for a slot, so a flight that was already
// waiting for a slot goes straight to the endpoint the moment a slot frees
// up, during the Retry-After the endpoint just asked for.
func TestReview3QueuedFlightIgnoresHoldOff(t *testing.T) {
	l := &EndpointLimiter{MaxConcurrent: 1}
	const ep = "https://idp.example/token"
	ctx := context.Background()
	releaseA, _, err := l.acquire(ctx, ep, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		release, _, err := l.acquire(ctx, ep, time.Now)
		if err != nil {
			t.Error(err)
			return
		}
		got <- time.Now()
		release()
	}()
	time.Sleep(50 * time.Millisecond) // B is queued on the slot
	// A's call came back 429 Retry-After: 2s; A gives its slot up.
	start := time.Now()
	l.holdOff(ep, 2*time.Second, start)
	releaseA()
	select {
	case at := <-got:
		t.Fatalf("queued flight got a slot %v into a 2s Retry-After hold-off", at.Sub(start))
	case <-time.After(1500 * time.Millisecond):
	}
	<-got
}
