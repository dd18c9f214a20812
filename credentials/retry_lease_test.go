package credentials_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
)

// A refresher whose endpoint answers 503 (or 429) with Retry-After keeps
// its lease through the pause and retries under it. Releasing it would
// wake every replica waiting on the profile to re-read it and race for the
// lease, and the winner, whose process never saw the Retry-After, would
// call the endpoint inside the pause; the loser pays a failed write, and
// the holder a release and a second take (issue 19: the file store's cost
// per refresh). Here a second replica arrives during the pause: it waits
// for the holder's retry and adopts its token, and the store sees three
// writes in all (the lease, the result, the lease cleared).
func TestRetryAfterKeepsTheLease(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	long := func(c *credentials.Config) { c.LeaseTTL = 10 * time.Second }
	a, b := f.creds(t, long), f.creds(t, long)
	f.srv.FailNext(1, oauthtest.FaultUnavailable) // 503, Retry-After: 1
	puts := f.flaky.puts.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type result struct {
		tok *credentials.Token
		err error
	}
	fromA := make(chan result, 1)
	go func() {
		tok, err := a.Token(ctx)
		fromA <- result{tok, err}
	}()
	for len(f.srv.RefreshLog()) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the first replica never called the endpoint")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tokB, err := b.Token(ctx) // inside the second the endpoint asked for
	if err != nil {
		t.Fatalf("second replica: %v", err)
	}
	ra := <-fromA
	if ra.err != nil {
		t.Fatalf("first replica: %v", ra.err)
	}
	if ra.tok.AccessToken != tokB.AccessToken {
		t.Fatal("the replicas hold different tokens: the second refreshed past the first")
	}
	log := f.srv.RefreshLog()
	if len(log) != 2 || log[0].Result != oauthtest.ResultFault || log[1].Result != oauthtest.ResultRotated {
		t.Fatalf("endpoint saw %+v; want the 503, then one refresh", log)
	}
	if gap := log[1].At.Sub(log[0].At); gap < time.Second {
		t.Fatalf("the refresh came %v after the 503, inside its 1 s Retry-After", gap)
	}
	if n := f.flaky.puts.Load() - puts; n != 3 {
		t.Fatalf("%d store writes; want 3 (lease, result, lease cleared), without a release and a second take", n)
	}
	if s := f.srv.Stats(); s.ReuseDetections != 0 {
		t.Fatalf("%d reuse detections", s.ReuseDetections)
	}
}
