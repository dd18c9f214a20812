package credentials_test

// Hostile review 4: the rule that a refresh token held back after a failed
// store write goes back into a store that lost the profile only while its
// access token is fresh ("no replica refreshes past a fresh token"). Each
// test is a way another replica does refresh past a fresh token; the write
// that failed had in fact landed, so the held-back token is spent when it
// is put back, and the next refresh replays it. Each fails on the code as
// reviewed.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// heldBackLanded makes c1 refresh with the reply of its store write lost
// although the write applied (so the rotated token is in the store, where
// every replica can read and spend it, and c1 holds it back as pending),
// and then cuts c1 off from the store. It returns c1 and a store handle
// that is not cut off.
func heldBackLanded(t *testing.T, f *fixture, mod func(*credentials.Config)) (*credentials.Credentials, *storage.Store) {
	t.Helper()
	c1 := f.creds(t, func(c *credentials.Config) {
		// Long enough that the endpoint call does not time out on a
		// loaded machine and retry with the lost replies already on.
		c.LeaseTTL = 3 * time.Second
		if mod != nil {
			mod(c)
		}
	})
	f.tokenWithFault(t, c1, &f.flaky.lostReply)
	// Cut c1 off before the lost replies stop, so that its background
	// retry cannot learn that the write landed.
	f.flaky.down.Store(true)
	f.flaky.lostReply.Store(false)
	return c1, f.direct()
}

// evictAndFlush empties the store (an evicting cache, a server restarted
// without persistence), reconnects c1 and lets it flush what it holds.
func evictAndFlush(t *testing.T, f *fixture, direct *storage.Store, c1 *credentials.Credentials) {
	t.Helper()
	if err := direct.Delete(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
	f.flaky.down.Store(false)
	c1.Flush(context.Background()) // an error is fine: refusing to restore is one answer
}

// noSpentTokenStored fails when the store holds a refresh token the server
// has rotated (the next refresh would replay it and revoke the grant), and
// then shows the consequence with one more refresh.
func noSpentTokenStored(t *testing.T, f *fixture, direct *storage.Store) {
	t.Helper()
	rec, _, err := direct.Load(context.Background(), "p")
	if errors.Is(err, storage.ErrNotFound) {
		return // held back: in the journal, named by the error
	}
	if err != nil {
		t.Fatal(err)
	}
	if f.srv.ValidRefresh(rec.RefreshToken.Reveal()) {
		return
	}
	c3 := f.replica(t, nil)
	_, rerr := c3.Refresh(context.Background(), nil)
	t.Fatalf("a spent refresh token (generation %d) was put back into the emptied store; the next refresh: %v, reuse detections %d",
		rec.Lineage.Gen, rerr, f.srv.Stats().ReuseDetections)
}

// A forced refresh (Refresh with nil, Rejected after a resource server's
// 401) spends a fresh token: tooLateToRestore's own comment exempts them as
// rare, but the promise has no such exception, MinRejectInterval paces one
// process only, Refresh(nil) is not paced at all, and the simulation's own
// callers make one in fifty calls a Refresh.
func TestReview4ForcedRefreshPastHeldBackTokenThenEviction(t *testing.T) {
	for _, how := range []string{"Refresh", "Rejected"} {
		t.Run(how, func(t *testing.T) {
			f := newFixture(t, oauthtest.Options{Rotate: true})
			c1, direct := heldBackLanded(t, f, nil)
			c2 := f.replica(t, nil)
			tok, err := c2.Token(context.Background()) // adopts c1's landed token
			if err != nil {
				t.Fatal(err)
			}
			if how == "Refresh" {
				_, err = c2.Refresh(context.Background(), nil)
			} else {
				_, err = c2.Rejected(context.Background(), tok)
			}
			if err != nil {
				t.Fatal(err)
			}
			evictAndFlush(t, f, direct, c1)
			noSpentTokenStored(t, f, direct)
		})
	}
}

// Clocks differ between machines (the simulation draws ±5 min per
// replica): a replica whose clock runs ahead sees the token due, or
// expired, while the holder's clock still puts it in the first half of its
// life. No forced refresh is involved: c2 only calls Token. Five-minute
// access tokens are common (Okta's minimum, many IdPs' default for
// machine clients); the simulation's are one second long.
func TestReview4SkewedReplicaRefreshesPastHeldBackToken(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true, AccessTTL: 5 * time.Minute})
	c1, direct := heldBackLanded(t, f, nil)
	c2 := f.replica(t, func(c *credentials.Config) {
		c.Now = func() time.Time { return time.Now().Add(5 * time.Minute) }
	})
	if _, err := c2.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Stats().RefreshCalls; n != 2 {
		t.Fatalf("%d refresh calls; the skewed replica was to refresh past c1's token", n)
	}
	evictAndFlush(t, f, direct, c1)
	noSpentTokenStored(t, f, direct)
}

// An access token without expires_in (and not a JWT) is never renewed by
// time: it is replaced only when a server rejects it, that is by a forced
// refresh, the one kind tooLateToRestore does not bound. And for it
// tooLateToRestore is false for ever: hours later the held-back token still
// goes back.
func TestReview4TokenWithoutExpiryRestoredAfterRejection(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true, Opaque: true, OmitExpiresIn: true})
	var later atomic.Int64
	c1, direct := heldBackLanded(t, f, func(c *credentials.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	})
	c2 := f.replica(t, nil)
	tok, err := c2.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Expiry.IsZero() {
		t.Fatalf("token has an expiry %v; the test needs one without", tok.Expiry)
	}
	if _, err := c2.Rejected(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	later.Store(int64(10 * time.Hour)) // c1 flushes ten hours on
	evictAndFlush(t, f, direct, c1)
	noSpentTokenStored(t, f, direct)
}
