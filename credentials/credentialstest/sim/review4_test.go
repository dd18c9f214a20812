package sim

// Hostile review 4 of the checks: classifications that count a replay the
// library causes as an inherent loss. Each test fails on the checks as
// reviewed.

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// The store loses the record while a rotation is at the server, and a
// writer puts the generation being rotated (the newest the store ever
// held, already spent at the server) back into the emptied store. The
// checks call that inherent ("the wipe took the lease with it") and excuse
// every reuse after it. It is not inherent: the only writer in the library
// that puts back a generation another replica is rotating is a replica
// restoring a refresh token it held back after a write that failed but
// landed (tooLateToRestore lets it while the access token is fresh, and a
// forced Refresh, which the simulation's callers make, or a skewed clock
// spends a fresh token). The rotating replica's own restore writes the
// successor, and its releaseLease after a lost answer is excused by the
// lost answer already. Such a write must break the lineage invariant.
func TestReview4SpentGenerationPutBackMidRotationIsAViolation(t *testing.T) {
	rec := &recorder{TB: t}
	res := Run(rec, 5, Options{
		Open:   func(testing.TB) driver.Adapter { return memory.New(nil) },
		Store:  "memory",
		adjust: quiet,
		sabotage: func(r *run) {
			hold := r.srv.HoldRefreshes(oauthtest.AfterRotate)
			defer hold.Release()
			select {
			case <-hold.Arrived():
			case <-time.After(r.o.Duration):
				t.Error("no refresh reached the server")
				return
			}
			ctx := context.Background()
			// What a replica holding this generation back (its write
			// landed, its reply was lost) writes into the emptied store.
			a := r.world.Adapter("held-back", rand.New(rand.NewPCG(1, 1)), faultstore.Rates{})
			b, _, err := a.Get(ctx, profile)
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			held, err := storage.DecodeRecord(b)
			if err != nil {
				t.Errorf("decode: %v", err)
				return
			}
			held.Lease = nil
			if err := r.world.Evict(ctx, profile); err != nil {
				t.Errorf("evict: %v", err)
				return
			}
			if b, err = storage.EncodeRecord(held); err == nil {
				_, err = a.Put(ctx, profile, b, driver.IfAbsent())
			}
			if err != nil {
				t.Errorf("put back: %v", err)
			}
		},
	})
	if res.Broken[Lineage] == 0 && res.Broken[NoReuse] == 0 {
		t.Fatalf("a spent generation put back into the emptied store passed the checks (violations %v, inherent %d, loss %q)",
			res.Broken, res.Inherent, res.LossCause)
	}
}

// A reuse detection is excused as a lost answer when its request reached
// the server after its client had given up, whatever the token presented:
// also when that token was already spent before the request was sent, which
// is a replay by the client, not a late delivery. Here a replica presents
// the seed token after the server has rotated it and answered, and its
// request (delayed on its way, as on a loaded machine) arrives after its
// client timed out. The checks must not call that a lost answer.
func TestReview4LateReplayOfASpentTokenIsNotALostAnswer(t *testing.T) {
	r := &run{t: t, o: &Options{}, sc: &scenario{seed: 6},
		callers: map[int64]string{}, requests: map[int64]int64{}, received: map[int64]bool{}, ended: map[int64]time.Time{}, gaveUp: map[int64]time.Time{}, sentAt: map[int64]time.Time{}}
	r.res = &Result{}
	r.srv = oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer r.srv.Close()
	r.srv.AddClient(clientID, clientSecret)
	r.srv.SetFaultFunc(r.serverFaults()) // records callers and request ids; live is false: no faults
	r.seedRT = r.srv.IssueRefreshToken(clientID)
	client := &http.Client{Transport: &transport{r: r, name: "r0"}}
	req := credentials.TokenRequest{TokenURL: r.srv.TokenURL(), ClientID: clientID, ClientSecret: clientSecret,
		Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.seedRT}}}
	ctx := context.Background()
	if _, err := credentials.RequestToken(ctx, client, req); err != nil {
		t.Fatal(err) // rotated, answer delivered
	}
	time.Sleep(5 * time.Millisecond)
	sent := time.Now() // the replay is sent after the rotation was answered
	if _, err := credentials.RequestToken(ctx, client, req); err == nil {
		t.Fatal("the spent seed was accepted")
	}
	log := r.srv.RefreshLog()
	replay := log[len(log)-1]
	if replay.Result != oauthtest.ResultReuse {
		t.Fatalf("replay result %v", replay.Result)
	}
	// Its client gave up between sending it and its arrival (a delay on
	// the way, which the harness itself says happens under load).
	r.mu.Lock()
	r.gaveUp[r.requests[replay.Call]] = sent.Add(replay.At.Sub(sent) / 2)
	r.mu.Unlock()
	if at, cause := r.loss(); !at.IsZero() {
		t.Fatalf("a replay of a token spent before it was sent was excused as %q", cause)
	}
}
