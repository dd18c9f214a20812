package credentials_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

func skewed(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }

// TestClockSkewSlowHolder: the lease holder's clock runs 5 minutes slow, so
// its lease looks expired to everyone else on arrival. Taking it over would
// spend the refresh token twice and, with rotation, revoke the family.
func TestClockSkewSlowHolder(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	slow := f.creds(t, func(c *credentials.Config) { c.Now = skewed(-5 * time.Minute) })
	hold := f.srv.HoldRefreshes(oauthtest.BeforeRotate)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() { _, err := slow.Token(context.Background()); errs <- err })
	<-hold.Arrived()
	for _, d := range []time.Duration{0, 5 * time.Minute} {
		c := f.creds(t, func(c *credentials.Config) { c.Now = skewed(d) })
		wg.Go(func() { _, err := c.Token(context.Background()); errs <- err })
	}
	time.Sleep(300 * time.Millisecond)
	if n := f.srv.Stats().TokenCalls; n != 1 {
		t.Fatalf("%d token calls while the slow-clocked holder refreshes; others took over its lease", n)
	}
	hold.Release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := f.srv.Stats(); s.RefreshCalls != 1 || s.ReuseDetections != 0 {
		t.Fatalf("stats %+v, want 1 refresh and no reuse detection", s)
	}
}

// TestClockSkewFastHolderCrashed: a holder whose clock runs 5 minutes fast
// wrote a lease and died. Its Until lies 5 minutes ahead; the survivor must
// take over one lease TTL after first seeing it, not 5 minutes later.
func TestClockSkewFastHolderCrashed(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	f.store.Update(context.Background(), "p", func(r *storage.Record) error {
		r.Lease = &storage.Lease{Owner: "ghost", Until: time.Now().Add(5*time.Minute + 2*time.Second)}
		return nil
	})
	c := f.creds(t, nil) // LeaseTTL 2 s
	start := time.Now()
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3500*time.Millisecond {
		t.Fatalf("survivor waited %v for a dead fast-clocked holder", took)
	}
	if s := f.srv.Stats(); s.RefreshCalls != 1 || s.ReuseDetections != 0 {
		t.Fatalf("stats %+v", s)
	}
}
