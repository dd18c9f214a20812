package credentials

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// Tokens issued together get renewal points spread over the window from
// RenewAhead to Skew before expiry (issue 19), within its bounds, the same
// for the same seed.
func TestRenewalSpread(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c, err := New(Config{Store: storage.NewStore(memory.New(nil)), Skew: 10 * time.Second, RenewAhead: 110 * time.Second, Rand: r.Float64})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	expiry := now.Add(time.Hour)
	lo, hi := expiry.Add(-110*time.Second), expiry.Add(-60*time.Second) // spread 0.5 of the 100 s window
	var first, last time.Time
	for i := range 1000 {
		tok := c.tokenFrom(&storage.Record{AccessToken: secret.Secret(fmt.Sprintf("at-%d", i)), Expiry: expiry, IssuedAt: now}, now)
		if tok.renewAt.Before(lo) || tok.renewAt.After(hi) {
			t.Fatalf("token %d renews at %v, outside [%v, %v]", i, tok.renewAt.Sub(expiry), lo.Sub(expiry), hi.Sub(expiry))
		}
		if first.IsZero() || tok.renewAt.Before(first) {
			first = tok.renewAt
		}
		if tok.renewAt.After(last) {
			last = tok.renewAt
		}
		if !tok.validUntil.Equal(expiry.Add(-10 * time.Second)) {
			t.Fatal("the spread moved the skew")
		}
	}
	if last.Sub(first) < 45*time.Second {
		t.Fatalf("1000 renewal points span only %v of a 50 s spread", last.Sub(first))
	}
	// Replicas agree on a token's point, up to a twentieth of the spread.
	other, _ := New(Config{Store: storage.NewStore(memory.New(nil)), Skew: 10 * time.Second, RenewAhead: 110 * time.Second, Rand: rand.New(rand.NewPCG(3, 4)).Float64})
	defer other.Close()
	rec := &storage.Record{AccessToken: "shared", Expiry: expiry, IssuedAt: now}
	a, b := c.tokenFrom(rec, now).renewAt, other.tokenFrom(rec, now).renewAt
	if d := a.Sub(b).Abs(); d > 50*time.Second/20 {
		t.Fatalf("two replicas renew one token %v apart", d)
	}
}
