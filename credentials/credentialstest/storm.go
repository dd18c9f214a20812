// Package credentialstest checks the refresh protocol against a real
// store: a "storm" of replicas and goroutines asking one profile for
// tokens across several expiries, with an oauthtest server that rotates
// refresh tokens and revokes the whole family on reuse. Storage adapters'
// integration suites run it against their servers; users can run it against
// their own store.
//
// Storm runs the replicas as goroutines, StormProcesses as OS processes
// (copies of the test binary; InChild tells a replica process from the
// parent). NewServer and Seed are the server and profile a storm starts
// from, for tests that drive their own load. Burst is the many-profiles
// run, a benchmark: profiles (a thousand by default) whose tokens were
// issued together, against an endpoint that throttles, measuring how the
// fleet's renewals spread out.
package credentialstest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/reexec"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// StormOptions shape a storm. Zero fields take the defaults in brackets.
type StormOptions struct {
	Replicas   int           // Credentials, each on its own Store connection [8]
	Goroutines int           // per replica [100]
	Expiries   int           // token lifetimes to go through [5]
	TTL        time.Duration // access-token lifetime, whole seconds [2s]
	Latency    time.Duration // token endpoint latency [200ms]
}

func (o *StormOptions) defaults() {
	if o.Replicas == 0 {
		o.Replicas = 8
	}
	if o.Goroutines == 0 {
		o.Goroutines = 100
	}
	if o.Expiries == 0 {
		o.Expiries = 5
	}
	if o.TTL == 0 {
		o.TTL = 2 * time.Second
	}
	if o.Latency == 0 {
		o.Latency = 200 * time.Millisecond
	}
}

// StormResult is what the token server saw.
type StormResult struct {
	Stats oauthtest.Stats
	Calls int64 // Token calls made by all goroutines
}

// NewServer starts a rotating, reuse-detecting token server for a storm
// and registers its cleanup.
func NewServer(t testing.TB, o StormOptions) *oauthtest.Server {
	o.defaults()
	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: o.TTL, Rotate: true})
	srv.AddClient("storm-client", "storm-secret")
	srv.SetLatency(o.Latency)
	t.Cleanup(srv.Close)
	return srv
}

// Seed writes an expired profile that the storm will refresh.
func Seed(t testing.TB, st *storage.Store, profile string, srv *oauthtest.Server) {
	t.Helper()
	_, _, err := st.Update(context.Background(), profile, func(r *storage.Record) error {
		*r = storage.Record{Profile: profile, ClientID: "storm-client", ClientSecret: "storm-secret",
			TokenURL: srv.TokenURL(), AccessToken: "expired", Expiry: time.Now().Add(-time.Hour)}
		r.Grant(srv.IssueRefreshToken("storm-client"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Storm runs o.Replicas Credentials, each over a Store from open (one
// connection each), with o.Goroutines goroutines each, until every
// goroutine has seen o.Expiries distinct access tokens. It fails t unless
// the server saw exactly one refresh per expiry, no reuse detection, and
// every token handed out was valid at the server.
func Storm(t testing.TB, open func(t testing.TB) *storage.Store, o StormOptions) StormResult {
	o.defaults()
	srv := NewServer(t, o)
	profile := fmt.Sprintf("storm-%d", time.Now().UnixNano())
	seedStore := open(t)
	Seed(t, seedStore, profile, srv)

	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.Replicas*o.Goroutines)
	for range o.Replicas {
		st := open(t)
		c := newCredentials(t, st, profile)
		for range o.Goroutines {
			wg.Go(func() {
				if err := runCaller(c, srv, o.Expiries, &calls); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res := StormResult{Stats: srv.Stats(), Calls: calls.Load()}
	check(t, res, o.Expiries)
	return res
}

func check(t testing.TB, res StormResult, expiries int) {
	t.Helper()
	t.Logf("storm: %d Token calls, %d refresh calls, %d reuse detections, %d issued", res.Calls, res.Stats.RefreshCalls, res.Stats.ReuseDetections, res.Stats.Issued)
	if res.Stats.RefreshCalls != int64(expiries) || res.Stats.ReuseDetections != 0 {
		t.Fatalf("%d refresh calls and %d reuse detections over %d expiries; want exactly %d and 0",
			res.Stats.RefreshCalls, res.Stats.ReuseDetections, expiries, expiries)
	}
}

func newCredentials(t testing.TB, st *storage.Store, profile string) *credentials.Credentials {
	c, err := credentials.New(credentials.Config{
		Store: st, Profile: profile,
		Skew: 100 * time.Millisecond,
		// No proactive renewal: a storm must count one refresh per expiry,
		// and the last goroutines to stop must not start a sixth.
		RenewAhead:   100 * time.Millisecond,
		LeaseTTL:     5 * time.Second,
		PollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runCaller asks for tokens until it has seen expiries distinct ones,
// checking each new one at the server.
func runCaller(c *credentials.Credentials, srv validator, expiries int, calls *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last string
	for seen := 0; seen < expiries; {
		tok, err := c.Token(ctx)
		at := time.Now()
		calls.Add(1)
		if err != nil {
			return fmt.Errorf("credentials.Token after %d tokens: %w", seen, err)
		}
		if v := tok.AccessToken.Reveal(); v != last {
			if !srv.Valid(v) && !expiredSince(v, at) {
				return fmt.Errorf("token %d handed out is not valid at the server", seen+1)
			}
			last = v
			seen++
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

const childEnv = "TOKENCACHE_STORM_CHILD"

// InChild reports whether this test binary is a replica process started by
// StormProcesses. A test that must start a server before calling
// StormProcesses checks it first: the child gets the store URL from its
// parent and must not start a server of its own.
func InChild() bool { return os.Getenv(childEnv) != "" }

// StormProcesses runs the storm across OS processes: procs copies of the
// test binary, each one replica with o.Goroutines goroutines, on the store
// at storeURL, against a token server in this process. As with
// drivertest.RunProcesses, the children re-run the calling test, so call
// it from a test that reaches it without side effects first, or check
// InChild and call StormProcesses(t, "", ...) at once in a child.
func StormProcesses(t *testing.T, storeURL string, procs int, o StormOptions) StormResult {
	o.defaults()
	if spec := os.Getenv(childEnv); spec != "" {
		stormChild(t, spec)
		return StormResult{}
	}
	srv := NewServer(t, o)
	st, err := storage.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	profile := fmt.Sprintf("storm-%d", time.Now().UnixNano())
	Seed(t, st, profile, srv)

	var wg sync.WaitGroup
	outs := make([][]byte, procs)
	errs := make([]error, procs)
	spec := strings.Join([]string{storeURL, profile, srv.URL, strconv.Itoa(o.Goroutines), strconv.Itoa(o.Expiries)}, "|")
	for i := range procs {
		cmd := reexec.Command(context.Background(), t.Name(), childEnv, spec, "-test.v")
		wg.Go(func() { outs[i], errs[i] = cmd.CombinedOutput() })
	}
	wg.Wait()
	var calls int64
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica process %d: %v\n%s", i, err, outs[i])
		}
		if m := callsRE.FindSubmatch(outs[i]); m != nil {
			n, _ := strconv.ParseInt(string(m[1]), 10, 64)
			calls += n
		}
	}
	res := StormResult{Stats: srv.Stats(), Calls: calls}
	check(t, res, o.Expiries)
	return res
}

var callsRE = regexp.MustCompile(`storm-child calls=(\d+)`)

func stormChild(t *testing.T, spec string) {
	p := strings.Split(spec, "|")
	if len(p) != 5 {
		t.Fatalf("bad %s", childEnv)
	}
	goroutines, _ := strconv.Atoi(p[3])
	expiries, _ := strconv.Atoi(p[4])
	st, err := storage.Open(context.Background(), p[0])
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the Credentials (cleanups run last in, first out):
	// their Close may still write.
	t.Cleanup(func() { st.Close() })
	c := newCredentials(t, st, p[1])
	// The child cannot ask the parent's server object whether a token is
	// valid, so it checks at the server's resource endpoint instead.
	remote := &remoteServer{base: p[2]}
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			if err := runCaller(c, remote, expiries, &calls); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("storm-child calls=%d", calls.Load())
}

// expiredSince reports whether a JWT access token, valid by its exp claim
// when it was handed out at at, has expired since: on a loaded machine the
// check at the server can come after the token's short test lifetime.
// Revocation is not excused: reuse detections are counted apart.
func expiredSince(accessToken string, at time.Time) bool {
	exp, ok := credentials.JWTExpiry(accessToken)
	return ok && exp.After(at) && !exp.After(time.Now())
}

// validator tells whether the token server accepts an access token.
type validator interface{ Valid(accessToken string) bool }

// remoteServer asks an oauthtest server in another process, through its
// resource endpoint.
type remoteServer struct{ base string }

func (r *remoteServer) Valid(accessToken string) bool {
	req, err := http.NewRequest(http.MethodGet, r.base+"/api/resource", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
