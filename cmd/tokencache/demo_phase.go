package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// phaseResult is what one run of the load did.
type phaseResult struct {
	ok, fail, tokErr int64
	stats            oauthtest.Stats
	crashed          int // replicas that did not finish cleanly
}

func (r phaseResult) verdict(o demoOpts) string {
	s := fmt.Sprintf("%d requests served, %d failed; %d token endpoint calls for %d expiries (%.1f per expiry); %d reuse detections",
		r.ok, r.fail, r.stats.TokenCalls, o.expiries, float64(r.stats.TokenCalls)/float64(o.expiries), r.stats.ReuseDetections)
	if r.stats.ReuseDetections > 0 {
		s += ": the server revoked the grant"
	}
	if r.crashed > 0 {
		s += fmt.Sprintf("; %d replicas failed", r.crashed)
	}
	return s
}

// replica is the parent's handle on one replica process (demo or bench).
type replica struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan struct{}
	done  chan struct{} // the report reader finished

	mu   sync.Mutex
	last replicaReport
}

func (r *replica) counts() replicaReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// read follows the replica's reports until its stdout closes.
func (r *replica) read(out io.Reader) {
	defer close(r.done)
	sc := bufio.NewScanner(out)
	// A bench replica's last report carries its latency histograms.
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var rep replicaReport
		if json.Unmarshal(sc.Bytes(), &rep) != nil {
			continue
		}
		if rep.Ready {
			close(r.ready)
			continue
		}
		r.mu.Lock()
		r.last = rep
		r.mu.Unlock()
	}
}

// replicaSet is the replica processes of one run. The demo and the bench
// drive them the same way: start them all, wait until every one is set
// up, start the load in all at once, and end it by closing their stdin.
type replicaSet struct {
	what   string // "demo" or "bench", for messages
	reps   []*replica
	kill   context.CancelFunc
	stderr io.Writer
}

// startReplicas starts n copies of this program with args and environ.
// Close the set when done: it kills whatever is still running.
func (a *app) startReplicas(ctx context.Context, what string, n int, args, environ []string) (*replicaSet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%s: cannot find this program to start replicas: %w", what, err)
	}
	return startReplicaProcs(ctx, what, a.stderr, n, exe, args, environ)
}

func startReplicaProcs(ctx context.Context, what string, stderr io.Writer, n int, exe string, args, environ []string) (*replicaSet, error) {
	procCtx, kill := context.WithCancel(ctx)
	s := &replicaSet{what: what, kill: kill, stderr: stderr}
	var err error
	for i := range n {
		r := &replica{ready: make(chan struct{}), done: make(chan struct{})}
		r.cmd = exec.CommandContext(procCtx, exe, args...)
		r.cmd.Env = environ
		r.cmd.Stderr = stderr
		if r.stdin, err = r.cmd.StdinPipe(); err != nil {
			s.Close()
			return nil, err
		}
		out, err := r.cmd.StdoutPipe()
		if err != nil {
			s.Close()
			return nil, err
		}
		if err := r.cmd.Start(); err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: starting replica %d: %w", what, i, err)
		}
		go r.read(out)
		s.reps = append(s.reps, r)
	}
	return s, nil
}

// Close kills the replicas that are still running.
func (s *replicaSet) Close() { s.kill() }

// awaitReady waits until every replica is set up, so that the caller can
// start the clock only then: start-up time must not eat into the token
// lifetimes being compared.
func (s *replicaSet) awaitReady(ctx context.Context, limit time.Duration) error {
	readyBy := time.After(limit)
	for i, r := range s.reps {
		select {
		case <-r.ready:
		case <-r.done:
			return fmt.Errorf("%s: replica %d exited before it was ready", s.what, i)
		case <-readyBy:
			return fmt.Errorf("%s: replica %d not ready after %s", s.what, i, limit)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// start tells every replica to start its load.
func (s *replicaSet) start() {
	for _, r := range s.reps {
		io.WriteString(r.stdin, "go\n")
	}
}

// finish stops the load (EOF on stdin) and waits for every replica to
// exit, killing them all after grace. It returns each replica's last
// report and how many did not finish cleanly. Callers read their counters
// only after this, so that the replicas' counts and the token server's
// describe the same requests.
func (s *replicaSet) finish(grace time.Duration) (reports []replicaReport, crashed int) {
	for _, r := range s.reps {
		r.stdin.Close()
	}
	stopBy := time.AfterFunc(grace, s.kill)
	defer stopBy.Stop()
	for _, r := range s.reps {
		// The report reader must reach EOF before Wait: Wait closes our end
		// of the stdout pipe once the process has exited, and a final
		// report still in the pipe would be lost with it (the replica
		// would count as failed though it exited cleanly).
		<-r.done
		err := r.cmd.Wait()
		c := r.counts()
		if err != nil || !c.Done {
			crashed++
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				fmt.Fprintf(s.stderr, "%s: a replica exited with %v\n", s.what, ee)
			}
		}
		reports = append(reports, c)
	}
	return reports, crashed
}

// replicaTuning is the library timing the replicas run with, as global
// flags of the replica command line: tokens live only seconds here.
func replicaTuning(storeURL, profile string, pollInterval, latency time.Duration) []string {
	// The endpoint call must fit in the refresh timeout, and the lease must
	// outlast it (credentials.Config requires RefreshTimeout < LeaseTTL).
	refreshTimeout := max(2*time.Second, latency+time.Second)
	leaseTTL := max(5*time.Second, 2*refreshTimeout+time.Second)
	return []string{
		"--store", storeURL, "--profile", profile, "--skew", demoSkew.String(),
		"--poll-interval", pollInterval.String(), "--lease-ttl", leaseTTL.String(),
		"--refresh-timeout", refreshTimeout.String(),
	}
}

func (a *app) runPhase(ctx context.Context, o demoOpts, p demoPhase, storeURL string, storeGiven bool) (phaseResult, error) {
	srv := demoServer(o, p.rotate)
	defer srv.Close()
	const clientID = "demo-client"
	clientSecret := newDemoSecret()
	srv.AddClient(clientID, clientSecret)
	refreshToken := srv.IssueRefreshToken(clientID)

	if p.mode == modeShared {
		if err := seedShared(ctx, storeURL, demoProfile, srv.TokenURL(), clientID, clientSecret, refreshToken); err != nil {
			return phaseResult{}, fmt.Errorf("demo: seeding %s: %w", secret.RedactURL(storeURL), err)
		}
		if storeGiven {
			defer dropProfile(storeURL, demoProfile)
		}
	}

	args := append(replicaTuning(storeURL, demoProfile, 20*time.Millisecond, o.latency),
		"demo-replica", "--mode", p.mode, "--goroutines", strconv.Itoa(o.goroutines), "--think", o.think.String(),
		"--token-url", srv.TokenURL(), "--resource-url", srv.ResourceURL(), "--client-id", clientID,
	)
	// Secrets go by environment, not argv, where ps would show them.
	environ := append(os.Environ(), envDemoSecret+"="+clientSecret, envDemoRefresh+"="+refreshToken)
	otelEnv, err := otelEnviron(o.otel)
	if err != nil {
		return phaseResult{}, err
	}
	environ = append(environ, otelEnv...)

	reps, err := a.startReplicas(ctx, "demo", o.replicas, args, environ)
	if err != nil {
		return phaseResult{}, err
	}
	defer reps.Close()
	if err := reps.awaitReady(ctx, 30*time.Second); err != nil {
		return phaseResult{}, err
	}
	reps.start()

	// Run the given number of token lifetimes, stopping a little before
	// the last one ends so that no refresh for the next one starts.
	runFor := runLength(o.ttl, o.expiries)
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	progress := func() {
		var sum phaseResult
		for _, r := range reps.reps {
			c := r.counts()
			sum.ok, sum.fail = sum.ok+c.OK, sum.fail+c.Fail
		}
		st := srv.Stats()
		fmt.Fprintf(a.stdout, "  %5.1fs  requests served %7d  failed %6d   token endpoint calls %4d   reuse detections %d\n",
			time.Since(start).Seconds(), sum.ok, sum.fail, st.TokenCalls, st.ReuseDetections)
	}
	deadline := time.After(runFor)
loop:
	for {
		select {
		case <-tick.C:
			progress()
		case <-deadline:
			break loop
		case <-ctx.Done():
			tick.Stop()
			return phaseResult{}, ctx.Err()
		}
	}
	tick.Stop()
	var res phaseResult
	reports, crashed := reps.finish(15 * time.Second)
	var lib *libraryFigures
	for _, c := range reports {
		res.ok, res.fail, res.tokErr = res.ok+c.OK, res.fail+c.Fail, res.tokErr+c.TokErr
		if c.Library != nil {
			if lib == nil {
				lib = &libraryFigures{}
			}
			lib.add(c.Library)
		}
	}
	res.crashed = crashed
	res.stats = srv.Stats()
	progress()
	if lib != nil {
		// What the replicas' library recorded, from its metrics.
		fmt.Fprintf(a.stdout, "  library metrics: Token calls %d (memory %d, adopted %d, waited %d, refreshed %d, failed %d); "+
			"refreshes %d, adoptions %d; token endpoint calls %d; lease waits %d, takeovers %d; store conflicts %d, errors %d\n",
			lib.calls(), lib.Requests["memory"], lib.Requests["adopted"], lib.Requests["waited"], lib.Requests["refreshed"], lib.Requests["failed"],
			lib.Flights["refreshed"], lib.Flights["adopted"]+lib.Flights["waited"], lib.EndpointCalls, lib.LeaseWaits, lib.Takeovers,
			lib.StoreConflicts, lib.StoreErrors)
	}
	return res, nil
}

// runLength is how long a run of expiries token lifetimes lasts: it stops
// a little before the last lifetime ends, so that no refresh for the next
// one starts.
func runLength(ttl time.Duration, expiries int) time.Duration {
	life := ttl - demoSkew
	return time.Duration(expiries)*life - min(life/4, 500*time.Millisecond)
}

// dropProfile removes a demo's or bench's profile from a store the user gave.
func dropProfile(storeURL, profile string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := storage.Open(ctx, storeURL); err == nil {
		st.Delete(ctx, profile)
		st.Close()
	}
}
