package sim

// Hostile review 8 of the checks: the put-back of an older generation
// judged at the end against loss (judgeOlderPutBacks), and the writes of
// a writer outside the World found by the next write (Write.Before).
// Each test fails on the checks as reviewed.

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// survivedCutOff is one replica r0 whose first refresh is held at the
// server until r0 is cut off from the store for the rest of its lease:
// the checks call that a loss (holderCutOff: "could not store the
// successor before its lease ended"). But nobody else refreshes, the
// partition heals, and r0's background flush stores the successor: the
// grant lives on. (1.5 s lease, 1.35 s endpoint timeout; the partition
// from 0.8 s to 2 s; the lease taken at about 0.1 s.)
func survivedCutOff(sc *scenario) {
	quiet(sc)
	p := sc.replicas[0]
	p.leaseTTL, p.refreshTimeout = 1500*time.Millisecond, 1350*time.Millisecond
	p.start, p.maxRetries, p.goroutines = 100*time.Millisecond, -1, 1
	p.partition = window{800 * time.Millisecond, 2000 * time.Millisecond}
	sc.replicas = []replicaPlan{p}
}

// releaseFirstRefreshIntoThePartition holds the run's first refresh at
// the server after the rotation and lets it go once r0 is partitioned.
func releaseFirstRefreshIntoThePartition(t *testing.T, r *run) bool {
	hold := r.srv.HoldRefreshes(oauthtest.AfterRotate)
	defer hold.Release()
	select {
	case <-hold.Arrived():
	case <-time.After(time.Second):
		t.Error("no refresh reached the server")
		return false
	}
	sleepUntil(r.start.Add(850 * time.Millisecond))
	return true
}

// waitForGeneration waits until the store holds generation gen or later.
func waitForGeneration(t *testing.T, r *run, gen int, until time.Time) bool {
	for time.Now().Before(until) {
		if rec, _, err := r.clean.Load(context.Background(), profile); err == nil {
			if g, ok := r.srv.GrantOf(rec.RefreshToken.Reveal()); ok && g.Generation >= gen {
				return true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("the store never held generation %d", gen)
	return false
}

// putSeedBack empties the store and writes the grant's first refresh
// token (spent long ago) into it, as a library that restores a held-back
// token it must not restore would: with no lease, for anyone to present.
func putSeedBack(t *testing.T, r *run) {
	ctx := context.Background()
	a := r.world.Adapter("held-back", rand.New(rand.NewPCG(8, 8)), faultstore.Rates{})
	if err := r.world.Evict(ctx, profile); err != nil {
		t.Errorf("evict: %v", err)
		return
	}
	b, err := storage.EncodeRecord(&storage.Record{Profile: profile, ClientID: clientID, ClientSecret: clientSecret,
		RefreshToken: secret.Secret(r.seedRT), TokenURL: r.srv.TokenURL(),
		AccessToken: "expired-seed-access-token", Expiry: time.Now().Add(-time.Hour)})
	if err == nil {
		_, err = a.Put(ctx, profile, b, driver.IfAbsent())
	}
	if err != nil {
		t.Errorf("put back: %v", err)
	}
}

// The holder of a rotation is cut off from the store past its lease, so
// loss() says the successor was lost for good at the lease's end; but
// nobody refreshed meanwhile, the holder stored the successor after the
// partition, and the grant lived on. Then a writer puts the spent first
// generation back into the emptied store, over the newer ones, and the
// replica presents it: the server revokes the grant. Before c4919cf the
// put-back broke Lineage at once; now it is "after the loss", and so are
// the reuse and the revoked grant: the run passes. A "loss" the holder
// recovered from is no loss: it excuses nothing that followed.
func TestReview8OlderPutBackAfterARecoveredCutOffIsAViolation(t *testing.T) {
	rec := &recorder{TB: t}
	res := Run(rec, 8, Options{
		Open:     func(testing.TB) driver.Adapter { return memory.New(nil) },
		Store:    "memory",
		Duration: 3 * time.Second,
		adjust:   survivedCutOff,
		sabotage: func(r *run) {
			if !releaseFirstRefreshIntoThePartition(t, r) {
				return
			}
			// The successor reaches the store once the partition heals.
			if !waitForGeneration(t, r, 1, r.start.Add(2600*time.Millisecond)) {
				return
			}
			putSeedBack(t, r)
		},
	})
	t.Logf("loss %q, inherent %d, excused reuses %d, violations %v", res.LossCause, res.Inherent, res.ExcusedReuses, res.Broken)
	if res.Broken[Lineage] == 0 && res.Broken[NoReuse] == 0 {
		if res.LossCause == "" {
			t.Fatalf("the run did not set up the cut-off (no loss): %+v", res)
		}
		t.Fatalf("a spent generation put back over a newer one, then presented, passed the checks: excused as after the %q", res.LossCause)
	}
}

// rotate presents rt at srv and returns its successor.
func rotate(t *testing.T, srv *oauthtest.Server, rt string) string {
	t.Helper()
	resp, err := http.PostForm(srv.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {clientID}, "client_secret": {clientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.RefreshToken == "" {
		t.Fatalf("refresh: status %d, %v", resp.StatusCode, err)
	}
	return body.RefreshToken
}

func encodeRT(t *testing.T, rt string) []byte {
	t.Helper()
	b, err := storage.EncodeRecord(&storage.Record{Profile: profile, ClientID: clientID, ClientSecret: clientSecret,
		RefreshToken: secret.Secret(rt), TokenURL: "http://127.0.0.1/token"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The process replica (a writer outside the World) puts a spent
// generation back into an emptied store, and only later, after the loss,
// does a write through the World find it there. The checks stamp the
// put-back with the time it was found, not the earliest time it can have
// happened (just after the last write the World saw), and so excuse it as
// after the loss, although it came before. An unseen write must be judged
// at the earliest moment it may have been made.
func TestReview8UnseenPutBackIsJudgedAtTheEarliestItCanHaveHappened(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: time.Minute, Rotate: true})
	defer srv.Close()
	srv.AddClient(clientID, clientSecret)
	gen0 := srv.IssueRefreshToken(clientID)
	gen2 := rotate(t, srv, rotate(t, srv, gen0))

	r, _ := review7Run(t)
	r.srv, r.storedGen = srv, -1
	r.sc.kill = &killPlan{stage: oauthtest.BeforeRotate} // a process replica runs
	r.world.OnWrite(r.onWrite)
	a := r.world.Adapter("r0", rand.New(rand.NewPCG(8, 8)), faultstore.Rates{})
	if _, err := a.Put(ctx, profile, encodeRT(t, gen2), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if err := r.world.Evict(ctx, profile); err != nil {
		t.Fatal(err)
	}
	// The process replica, outside the World, puts generation 0 back.
	if _, err := r.world.Inner().Put(ctx, profile, encodeRT(t, gen0), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	loss := time.Now() // say, a replica's answer lost to its timeout
	time.Sleep(20 * time.Millisecond)
	// The next write through the World finds the put-back.
	if _, err := a.Put(ctx, profile, encodeRT(t, gen2), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if r.res.Unseen != 1 {
		t.Fatalf("unseen writes %d, want 1", r.res.Unseen)
	}
	r.judgeOlderPutBacks(loss)
	if r.res.Broken[Lineage] == 0 {
		t.Fatalf("generation 0 put back before the loss was excused as after it (inherent %d)", r.res.Inherent)
	}
}

// The simulation seeds its record without a lineage (no grant id), as an
// old version or pancloud wrote them: every record of every run is then
// of the legacy kind. A record that init, Profiles.Add or a login writes
// names its grant, and applySuccessor takes branches for those only: a
// store rolled back to an older generation of the grant gets the held
// successor back (or errHeldBack), another grant's record is errForeign.
// No seed runs them, so a mutation there survives every seed. The
// simulated record must be the kind users have.
func TestReview8SimulatedRecordNamesItsGrant(t *testing.T) {
	var grant string
	Run(t, 2, Options{
		Open:   func(testing.TB) driver.Adapter { return memory.New(nil) },
		adjust: quiet,
		sabotage: func(r *run) {
			if rec, _, err := r.clean.Load(context.Background(), profile); err == nil {
				grant = rec.Lineage.Grant
			}
		},
	})
	if grant == "" {
		t.Fatal("the simulated record names no grant: only the legacy-record path is simulated")
	}
}

// A rotation whose answer its client abandoned 5 ms after sending (its
// endpoint timeout is 375 ms), with no injected fault, stall or
// partition: the library dropped the answer itself (a call cancelled by
// Close, or by a caller giving up, as in issue 11's case 2). loss() calls
// that "answer lost to the client's own timeout" and excuses every reuse,
// revoked grant, missing record and invalid hand-out after it. A client
// gives up on its own timeout only once that timeout has passed.
func TestReview8AnswerAbandonedBeforeTheTimeoutIsNoInherentLoss(t *testing.T) {
	r, _ := review7Run(t)
	r.srv = oauthtest.NewServer(oauthtest.Options{AccessTTL: time.Minute, Rotate: true})
	defer r.srv.Close()
	r.srv.AddClient(clientID, clientSecret)
	rt := r.srv.IssueRefreshToken(clientID)
	hold := r.srv.HoldRefreshes(oauthtest.AfterRotate)
	r.writes = []storeWrite{{at: time.Now(), who: "r0", gen: 0, lease: true}}
	sent := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.srv.TokenURL(), strings.NewReader(url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}, "client_secret": {clientSecret}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-hold.Arrived() // rotated at the server
	time.Sleep(5 * time.Millisecond)
	cancel() // the library drops the call
	<-done
	gaveUp := time.Now()
	hold.Release()
	time.Sleep(50 * time.Millisecond)
	log := r.srv.RefreshLog()
	if len(log) != 1 || log[0].Result != oauthtest.ResultRotated {
		t.Fatalf("server log %+v, want one rotation", log)
	}
	r.requests[log[0].Call], r.callers[log[0].Call] = 10, "r0"
	r.sentAt[10], r.gaveUp[10], r.ended[10] = sent, gaveUp, gaveUp
	if at, cause := r.loss(); !at.IsZero() {
		t.Fatalf("an answer the library abandoned %v into its %v endpoint timeout is an inherent loss: %q",
			gaveUp.Sub(sent).Round(time.Millisecond), r.sc.replicas[0].refreshTimeout, cause)
	}
}

// Not a failing test: a guard the checks lack. r0 closes (a fault-free
// shutdown) while its refresh is at the server after the rotation; the
// library must let the call finish and store its answer (Close waits for
// the flight). A library whose Close cuts the endpoint call (the flight's
// context instead of context.WithoutCancel(ctx) for the call in
// refreshUnderLease) loses the answer, and the next refresh revokes the
// grant; the checks call that "answer lost to the client's own timeout"
// and the run passes. This test fails on that mutation.
func TestReview8CloseDuringARotationLosesNothing(t *testing.T) {
	res := Run(t, 9, Options{
		Open:     func(testing.TB) driver.Adapter { return memory.New(nil) },
		Store:    "memory",
		Duration: 2 * time.Second,
		adjust: func(sc *scenario) {
			quiet(sc)
			sc.replicas = sc.replicas[:2]
			for i := range sc.replicas {
				p := &sc.replicas[i]
				p.leaseTTL, p.refreshTimeout, p.start, p.maxRetries = 1500*time.Millisecond, time.Second, 100*time.Millisecond, -1
			}
			sc.replicas[1].start = 200 * time.Millisecond
			sc.replicas[0].closeAt, sc.replicas[0].restartAfter = 400*time.Millisecond, 10*time.Millisecond
		},
		sabotage: func(r *run) {
			hold := r.srv.HoldRefreshes(oauthtest.AfterRotate)
			defer hold.Release()
			select {
			case <-hold.Arrived():
			case <-time.After(time.Second):
				t.Error("no refresh reached the server")
				return
			}
			sleepUntil(r.start.Add(450 * time.Millisecond)) // past r0's Close
		},
	})
	if res.LossCause != "" || res.ExcusedReuses > 0 {
		t.Fatalf("a Close during a rotation lost the grant (%q, %d reuses excused)", res.LossCause, res.ExcusedReuses)
	}
}

// A holder that sent its token call 100 ms after its lease ended, with no
// stall anywhere: nothing paused it, the library called the endpoint
// without a lease (a budget check gone, a wait put after taking the
// lease). pausedHolder only asks whether the call reached the server
// after the lease, and loss() then excuses every reuse that follows as
// "holder paused past its lease". A call sent after the lease, with the
// process running, is the library's doing.
func TestReview8CallSentAfterTheLeaseWithoutAStallIsNoPause(t *testing.T) {
	r, p := review7Run(t)
	leased := time.Now().Add(-3 * time.Second)
	sent := leased.Add(p.leaseTTL + 100*time.Millisecond)
	r.writes = []storeWrite{{at: leased, who: "r0", gen: 0, lease: true}}
	r.requests[1], r.sentAt[10] = 10, sent
	e := oauthtest.RefreshEvent{Call: 1, At: sent.Add(time.Millisecond), Generation: 0, Result: oauthtest.ResultRotated, Answered: true}
	if r.pausedHolder(e, r.writes, map[int64]string{1: "r0"}, map[string]replicaPlan{"r0": p}) {
		t.Fatalf("a call sent %v after the lease ended, with no stall, counts as a holder paused past its lease", sent.Sub(leased.Add(p.leaseTTL)))
	}
}

// The process replica was killed, and the World saw a write after that;
// then the record changes outside the World. The dead process cannot
// have made that change (something wrote unseen: a write the World did
// not report, the store itself), yet the checks put it down to the
// process replica, because one ran in this seed, and say nothing.
func TestReview8ChangeAfterTheProcessDiedIsNotPutDownToIt(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: time.Minute, Rotate: true})
	defer srv.Close()
	srv.AddClient(clientID, clientSecret)
	gen0 := srv.IssueRefreshToken(clientID)
	gen1 := rotate(t, srv, gen0)

	rec := &recorder{TB: t}
	r, _ := review7Run(t)
	r.t, r.srv, r.storedGen = rec, srv, -1
	r.sc.kill = &killPlan{stage: oauthtest.BeforeRotate}
	r.world.OnWrite(r.onWrite)
	r.killed = &killRecord{at: time.Now(), stage: oauthtest.BeforeRotate}
	time.Sleep(10 * time.Millisecond)
	a := r.world.Adapter("r0", rand.New(rand.NewPCG(8, 8)), faultstore.Rates{})
	if _, err := a.Put(ctx, profile, encodeRT(t, gen0), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	// Nobody the World knows of: the process died before the last write.
	if _, err := r.world.Inner().Put(ctx, profile, encodeRT(t, gen1), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, profile, encodeRT(t, gen1), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if len(rec.errs) == 0 && r.res.Broken == ([numInvariants]int{}) {
		t.Fatalf("a change made after the process replica died was put down to it (unseen %d) and passed", r.res.Unseen)
	}
}

// A change outside the World in a seed with no process replica fails the
// test (t.Errorf) but breaks no invariant: the run's Result passes, and a
// long run's summary ("N seeds run, 0 failed", the seeds per invariant)
// does not list the seed.
func TestReview8ChangeOutsideTheWorldFailsTheResult(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: time.Minute, Rotate: true})
	defer srv.Close()
	srv.AddClient(clientID, clientSecret)
	gen0 := srv.IssueRefreshToken(clientID)
	gen1 := rotate(t, srv, gen0)

	rec := &recorder{TB: t}
	r, _ := review7Run(t)
	r.t, r.srv, r.storedGen = rec, srv, -1
	r.world.OnWrite(r.onWrite)
	a := r.world.Adapter("r0", rand.New(rand.NewPCG(8, 8)), faultstore.Rates{})
	if _, err := a.Put(ctx, profile, encodeRT(t, gen0), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.world.Inner().Put(ctx, profile, encodeRT(t, gen1), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, profile, encodeRT(t, gen1), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if len(rec.errs) == 0 && !r.res.Failed() {
		t.Fatal("the change outside the World was not reported")
	}
	var sum Summary
	sum.Add(r.res)
	if len(sum.Failed) == 0 {
		t.Fatalf("the test failed (%q) but the run's result passes: the summary lists no failed seed", rec.errs)
	}
}
