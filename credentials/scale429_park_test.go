package credentials_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// A token endpoint that asks for a pause (503 or 429 with Retry-After)
// gets it from every replica of a profile, not only from the process that
// was answered: the holder parks its lease for the pause instead of
// releasing it, while the token being replaced stays valid long enough.

// parkStores opens, per store kind, a function that returns a new
// connection to one shared store each time it is called, as replicas in
// separate processes would hold.
func parkStores(t *testing.T) map[string]func() *storage.Store {
	name := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	db := "sqlite://" + filepath.Join(t.TempDir(), "tokens.db")
	return map[string]func() *storage.Store{
		"memory": func() *storage.Store { return storage.NewStore(memory.New(&memory.Options{Name: name})) },
		"sqlite": func() *storage.Store {
			a, err := driver.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			return storage.NewStore(a)
		},
	}
}

// parkSetup seeds a profile whose access token is due for renewal and
// stays valid for validFor, on an oauthtest server that answers the first
// refresh 503 with Retry-After: 1.
func parkSetup(t *testing.T, st *storage.Store, validFor time.Duration) *oauthtest.Server {
	t.Helper()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("cid", "csecret")
	now := time.Now()
	rec := &storage.Record{Profile: "p", ClientID: "cid", ClientSecret: "csecret", TokenURL: srv.URL + "/oauth2/token",
		AccessToken: "seeded-access", TokenType: "Bearer", Expiry: now.Add(validFor + parkSkew), IssuedAt: now.Add(-time.Hour)}
	rec.Grant(srv.IssueRefreshToken("cid"))
	if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
		t.Fatal(err)
	}
	srv.FailNext(1, oauthtest.FaultUnavailable)
	return srv
}

const parkSkew = 5 * time.Second

// parkReplica is one replica: its own Credentials, store connection and
// endpoint limiter (a process's limiter knows nothing of another's pause).
func parkReplica(t *testing.T, st *storage.Store, leaseTTL time.Duration) *credentials.Credentials {
	t.Helper()
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", Skew: parkSkew, RenewAhead: time.Hour,
		LeaseTTL: leaseTTL, PollInterval: 50 * time.Millisecond, RetryBackoff: 20 * time.Millisecond,
		Limiter: &credentials.EndpointLimiter{}, JournalDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refreshing starts a refresh of the seeded token on c, as a caller
// that found it refused would, and returns where its result will come.
func refreshing(t *testing.T, c *credentials.Credentials) <-chan error {
	t.Helper()
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken.Reveal() != "seeded-access" {
		t.Fatalf("Token returned %q, want the seeded token", tok.AccessToken.Reveal())
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Refresh(context.Background(), tok)
		done <- err
	}()
	return done
}

// firstCall waits for the server's first refresh call (the one answered
// 503) and returns when it arrived.
func firstCall(t *testing.T, srv *oauthtest.Server) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if log := srv.RefreshLog(); len(log) > 0 {
			return log[0].At
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no refresh call reached the server")
	return time.Time{}
}

// renewed calls Token on each replica until every one returns another
// token than the seeded one; a Token call that fails fails the test.
func renewed(t *testing.T, within time.Duration, cs ...*credentials.Credentials) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, c := range cs {
		for {
			tok, err := c.Token(context.Background())
			if err != nil {
				t.Fatalf("Token failed while the seeded token was valid: %v", err)
			}
			if tok.AccessToken.Reveal() != "seeded-access" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not renewed within %v", within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// rotations counts the refresh calls the server rotated, and checks that
// none came inside the pause the first call's answer asked for.
func checkCalls(t *testing.T, srv *oauthtest.Server, pause time.Duration) (rotations int) {
	t.Helper()
	log := srv.RefreshLog()
	for i, e := range log {
		if e.Result == oauthtest.ResultRotated {
			rotations++
		}
		if i > 0 && e.At.Sub(log[0].At) < pause {
			t.Errorf("refresh call %d presented %v after the 503 that asked for a %v pause", i, e.At.Sub(log[0].At).Round(time.Millisecond), pause)
		}
	}
	if n := srv.Stats().ReuseDetections; n != 0 {
		t.Errorf("%d reuse detections", n)
	}
	return rotations
}

// (a) After a 503 with Retry-After, the other replica does not present the
// refresh token before the pause ends (it waits for the parked lease and
// keeps serving the valid token), and the renewal completes with one
// rotation.
func TestScale429ParkedLeaseKeepsOtherReplicasOut(t *testing.T) {
	for kind, open := range parkStores(t) {
		t.Run(kind, func(t *testing.T) {
			srv := parkSetup(t, open(), 2*time.Minute)
			a := parkReplica(t, open(), 10*time.Second)
			b := parkReplica(t, open(), 10*time.Second)
			aDone := refreshing(t, a)
			at := firstCall(t, srv)
			// b, in another process, wants the seeded token replaced too,
			// while a waits out the pause.
			bDone := refreshing(t, b)
			for time.Since(at) < 900*time.Millisecond {
				// Callers with the valid token are not held up meanwhile.
				for _, c := range []*credentials.Credentials{a, b} {
					if tok, err := c.Token(context.Background()); err != nil || !tok.Valid(time.Now()) {
						t.Fatalf("Token inside the pause: %v; want the valid seeded token", err)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, done := range []<-chan error{aDone, bDone} {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			renewed(t, time.Second, a, b)
			if n := checkCalls(t, srv, time.Second); n != 1 {
				t.Errorf("%d rotations, want 1", n)
			}
		})
	}
}

// (b) A lease is parked for the pause whether the token being replaced is
// valid or not: released, an expired token's lease let every waiting
// replica present it inside the pause, one after another (8 429s within
// 30 ms for one renewal at P = 10,000).
func TestScale429ParkForThePauseValidOrNot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		validFor time.Duration
		parked   bool
	}{
		{"far from expiry", 2 * time.Minute, true},
		{"expiring inside the pause", 400 * time.Millisecond, true},
		{"expired", -time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := parkStores(t)["memory"]
			st := open()
			srv := parkSetup(t, st, tc.validFor)
			a := parkReplica(t, open(), 10*time.Second)
			done := make(chan error, 1)
			go func() {
				// A forced refresh of the seeded token, valid or not.
				_, err := a.Refresh(context.Background(), nil)
				done <- err
			}()
			at := firstCall(t, srv)
			// The release (or the park) follows the answer at once; look
			// before a's retry after the pause could take the lease again.
			var lease *storage.Lease
			for time.Since(at) < 700*time.Millisecond {
				rec, _, err := st.Load(context.Background(), "p")
				if err != nil {
					t.Fatal(err)
				}
				if lease = rec.Lease; lease == nil || time.Duration(lease.TTL) < 10*time.Second {
					break // released or parked: no longer the lease a took to call
				}
				time.Sleep(5 * time.Millisecond)
			}
			switch {
			case tc.parked && (lease == nil || time.Duration(lease.TTL) > 1500*time.Millisecond):
				t.Fatalf("after the 503 the lease is %+v, want one parked for at most the 1-1.5s pause", lease)
			case !tc.parked && lease != nil:
				t.Fatalf("after the 503 the lease is %+v, want it released", lease)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			renewed(t, time.Second, a)
			if n := checkCalls(t, srv, time.Second); n != 1 {
				t.Errorf("%d rotations, want 1", n)
			}
		})
	}
}

// (c) A holder closed while its lease is parked takes the park off: the
// retry it waited for will not come, and a parked lease left behind would
// hold the other replicas off for their LeaseTTL, also one whose token has
// expired meanwhile (review 19b). The other replica renews at once, at the
// cost of a call the pause would have spared.
func TestScale429ParkedLeaseOfAClosedHolderIsTakenOff(t *testing.T) {
	open := parkStores(t)["memory"]
	srv := parkSetup(t, open(), 2*time.Minute)
	a := parkReplica(t, open(), 10*time.Second)
	const leaseTTL = 2 * time.Second
	b := parkReplica(t, open(), leaseTTL)
	refreshing(t, a) // its result is Close's error
	firstCall(t, srv)
	time.Sleep(100 * time.Millisecond) // the answer is handled
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	if err := <-refreshing(t, b); err != nil {
		t.Fatal(err)
	}
	renewed(t, time.Second, b)
	log := srv.RefreshLog()
	rotations := 0
	for _, e := range log {
		if e.Result == oauthtest.ResultRotated {
			rotations++
		}
	}
	if rotations != 1 || srv.Stats().ReuseDetections != 0 {
		t.Errorf("%d rotations, %d reuse detections; want 1 and 0", rotations, srv.Stats().ReuseDetections)
	}
	if last := log[len(log)-1].At; last.Sub(closed) > leaseTTL/2 {
		t.Errorf("b renewed %v after the holder closed: the parked lease outlived its holder", last.Sub(closed).Round(time.Millisecond))
	}
}
