package credentials_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// Review of the parked lease (a 429/503 with Retry-After parks the
// holder's lease for the pause instead of releasing it).
//
// The park is only harmless while its holder's flight goes on to retry
// when the pause ends: the other replicas honour any lease for at least
// their own LeaseTTL from when they first see it, whatever TTL it
// carries. A flight that ends with its lease parked (no retries left,
// MaxRetries < 0, Close during the parked sleep) leaves a lease nobody
// will clear, and a replica whose token expires meanwhile has no token
// for up to its LeaseTTL after it first saw the park, long after the
// pause the endpoint asked for has ended.

// review19bReplica is parkReplica with a chosen MaxRetries.
func review19bReplica(t *testing.T, st *storage.Store, leaseTTL time.Duration, maxRetries int) *credentials.Credentials {
	t.Helper()
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", Skew: parkSkew, RenewAhead: time.Hour,
		LeaseTTL: leaseTTL, PollInterval: 50 * time.Millisecond, RetryBackoff: 20 * time.Millisecond,
		MaxRetries: maxRetries, Limiter: &credentials.EndpointLimiter{}, JournalDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// review19bRenewsAfterExpiry waits until the seeded token is invalid
// (validUntil), then asks b for a token, which must be a renewed one
// within `within` (the endpoint's pause has long ended by then).
func review19bRenewsAfterExpiry(t *testing.T, srv *oauthtest.Server, b *credentials.Credentials, validUntil time.Time, within time.Duration) {
	t.Helper()
	time.Sleep(time.Until(validUntil.Add(100 * time.Millisecond)))
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	start := time.Now()
	tok, err := b.Token(ctx)
	if err != nil || tok.AccessToken.Reveal() == "seeded-access" {
		calls := srv.RefreshLog()
		t.Fatalf("replica b, its token expired, got no token for %v after the endpoint's pause ended (err %v); "+
			"the holder's flight had ended with its lease parked, which b honours for its whole LeaseTTL; %d refresh calls so far",
			time.Since(start).Round(time.Millisecond), err, len(calls))
	}
	if n := srv.Stats().ReuseDetections; n != 0 {
		t.Errorf("%d reuse detections", n)
	}
}

// A holder configured without retries (MaxRetries < 0) still parks its
// lease after a 503 with Retry-After: nobody retries when the pause ends.
func TestReview19bParkWithoutRetryStrandsExpiringReplica(t *testing.T) {
	open := parkStores(t)["memory"]
	const validFor = 2 * time.Second
	srv := parkSetup(t, open(), validFor) // first refresh: 503, Retry-After: 1
	validUntil := time.Now().Add(validFor)
	a := review19bReplica(t, open(), 10*time.Second, -1)
	b := review19bReplica(t, open(), 10*time.Second, 0)
	aDone := refreshing(t, a)
	firstCall(t, srv)
	if err := <-aDone; err == nil {
		t.Fatal("a's refresh without retries succeeded; want the 503")
	}
	// b is due to renew too (RenewAhead is an hour): its flight sees the
	// parked lease now, while the seeded token is still valid.
	bDone := refreshing(t, b)
	review19bRenewsAfterExpiry(t, srv, b, validUntil, 3*time.Second)
	<-bDone
}

// With the default MaxRetries (3), a fourth 503 in a row parks the lease
// and ends the flight: same strand.
func TestReview19bParkAfterLastRetryStrandsExpiringReplica(t *testing.T) {
	open := parkStores(t)["memory"]
	const validFor = 7 * time.Second
	srv := parkSetup(t, open(), validFor)
	srv.FailNext(3, oauthtest.FaultUnavailable) // four 503s in all
	validUntil := time.Now().Add(validFor)
	a := review19bReplica(t, open(), 10*time.Second, 0)
	b := review19bReplica(t, open(), 10*time.Second, 0)
	aDone := refreshing(t, a)
	firstCall(t, srv)
	bDone := refreshing(t, b)
	if err := <-aDone; err == nil {
		t.Fatal("a's refresh succeeded; want the fourth 503")
	}
	if n := len(srv.RefreshLog()); n != 4 {
		t.Fatalf("%d refresh calls before a gave up, want 4", n)
	}
	review19bRenewsAfterExpiry(t, srv, b, validUntil, 3*time.Second)
	<-bDone
}

// Close during the parked sleep ends the flight that would have retried;
// the parked lease stays.
func TestReview19bCloseWhileParkedStrandsExpiringReplica(t *testing.T) {
	open := parkStores(t)["memory"]
	const validFor = 2 * time.Second
	srv := parkSetup(t, open(), validFor)
	validUntil := time.Now().Add(validFor)
	a := review19bReplica(t, open(), 10*time.Second, 0)
	b := review19bReplica(t, open(), 10*time.Second, 0)
	aDone := refreshing(t, a)
	firstCall(t, srv)
	time.Sleep(100 * time.Millisecond) // the 503 is handled: the lease is parked
	bDone := refreshing(t, b)
	time.Sleep(100 * time.Millisecond) // b has seen the park
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	<-aDone
	review19bRenewsAfterExpiry(t, srv, b, validUntil, 3*time.Second)
	<-bDone
}

// A flight whose deadline (2 LeaseTTL + (MaxRetries+2) RefreshTimeout,
// 110 s by default) ends inside the parked sleep (a pause of up to
// MaxHoldOff, 5 minutes by default) never retries: same strand. Scaled
// down here: a's deadline is 780 ms, the pause 1-1.5 s.
func TestReview19bFlightDeadlineInsideParkStrandsExpiringReplica(t *testing.T) {
	open := parkStores(t)["memory"]
	const validFor = 2 * time.Second
	srv := parkSetup(t, open(), validFor)
	validUntil := time.Now().Add(validFor)
	st := open()
	a, err := credentials.New(credentials.Config{Store: st, Profile: "p", Skew: parkSkew, RenewAhead: time.Hour,
		LeaseTTL: 300 * time.Millisecond, RefreshTimeout: 60 * time.Millisecond, MaxRetries: 1,
		PollInterval: 50 * time.Millisecond, RetryBackoff: 20 * time.Millisecond,
		Limiter: &credentials.EndpointLimiter{}, JournalDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := review19bReplica(t, open(), 10*time.Second, 0)
	aDone := refreshing(t, a)
	firstCall(t, srv)
	time.Sleep(100 * time.Millisecond) // the 503 is handled: the lease is parked
	bDone := refreshing(t, b)
	if err := <-aDone; err == nil {
		t.Fatal("a's refresh succeeded; want its deadline inside the parked sleep")
	} else {
		t.Logf("a's flight ended: %v", err)
	}
	review19bRenewsAfterExpiry(t, srv, b, validUntil, 3*time.Second)
	<-bDone
}
