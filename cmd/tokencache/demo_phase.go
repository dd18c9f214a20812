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

// replica is the demo's handle on one replica process.
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

func (a *app) runPhase(ctx context.Context, o demoOpts, p demoPhase, exe, storeURL string, storeGiven bool) (phaseResult, error) {
	srv := demoServer(o, p.rotate)
	defer srv.Close()
	const clientID = "demo-client"
	clientSecret := newDemoSecret()
	srv.AddClient(clientID, clientSecret)
	refreshToken := srv.IssueRefreshToken(clientID)

	if p.mode == modeShared {
		if err := seedShared(ctx, storeURL, srv.TokenURL(), clientID, clientSecret, refreshToken); err != nil {
			return phaseResult{}, fmt.Errorf("demo: seeding %s: %w", storage.Redact(storeURL), err)
		}
		if storeGiven {
			defer a.dropDemoProfile(storeURL)
		}
	}

	args := []string{
		"--store", storeURL, "--profile", demoProfile,
		"--skew", demoSkew.String(), "--poll-interval", "20ms", "--lease-ttl", "5s", "--refresh-timeout", "2s",
		"demo-replica", "--mode", p.mode, "--goroutines", strconv.Itoa(o.goroutines), "--think", o.think.String(),
		"--token-url", srv.TokenURL(), "--resource-url", srv.ResourceURL(), "--client-id", clientID,
	}
	// Secrets go by environment, not argv, where ps would show them.
	environ := append(os.Environ(), envDemoSecret+"="+clientSecret, envDemoRefresh+"="+refreshToken)

	procCtx, kill := context.WithCancel(ctx)
	defer kill()
	reps := make([]*replica, o.replicas)
	for i := range reps {
		r := &replica{ready: make(chan struct{}), done: make(chan struct{})}
		r.cmd = exec.CommandContext(procCtx, exe, args...)
		r.cmd.Env = environ
		r.cmd.Stderr = a.stderr
		var err error
		if r.stdin, err = r.cmd.StdinPipe(); err != nil {
			return phaseResult{}, err
		}
		out, err := r.cmd.StdoutPipe()
		if err != nil {
			return phaseResult{}, err
		}
		if err := r.cmd.Start(); err != nil {
			return phaseResult{}, fmt.Errorf("demo: starting replica %d: %w", i, err)
		}
		go r.read(out)
		reps[i] = r
	}
	// Start the clock only when every process is up, so that start-up time
	// does not eat into the token lifetimes being compared.
	readyBy := time.After(30 * time.Second)
	for i, r := range reps {
		select {
		case <-r.ready:
		case <-r.done:
			return phaseResult{}, fmt.Errorf("demo: replica %d exited before it was ready", i)
		case <-readyBy:
			return phaseResult{}, fmt.Errorf("demo: replica %d not ready after 30s", i)
		case <-ctx.Done():
			return phaseResult{}, ctx.Err()
		}
	}
	for _, r := range reps {
		io.WriteString(r.stdin, "go\n")
	}

	// Run the given number of token lifetimes, stopping a little before
	// the last one ends so that no refresh for the next one starts.
	life := o.ttl - demoSkew
	runFor := time.Duration(o.expiries)*life - min(life/4, 500*time.Millisecond)
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	progress := func() {
		var sum phaseResult
		for _, r := range reps {
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
	for _, r := range reps {
		r.stdin.Close() // EOF: stop
	}
	// Stats are read only once every replica has stopped, so that the
	// counts and the server's counters describe the same requests.
	var res phaseResult
	stopBy := time.AfterFunc(15*time.Second, kill)
	defer stopBy.Stop()
	for _, r := range reps {
		err := r.cmd.Wait()
		<-r.done
		c := r.counts()
		var ee *exec.ExitError
		if err != nil || !c.Done {
			res.crashed++
			if errors.As(err, &ee) {
				fmt.Fprintf(a.stderr, "demo: a replica exited with %v\n", ee)
			}
		}
		res.ok, res.fail, res.tokErr = res.ok+c.OK, res.fail+c.Fail, res.tokErr+c.TokErr
	}
	res.stats = srv.Stats()
	progress()
	return res, nil
}

// dropDemoProfile removes the demo's profile from a store the user gave.
func (a *app) dropDemoProfile(storeURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := storage.Open(ctx, storeURL); err == nil {
		st.Delete(ctx, demoProfile)
		st.Close()
	}
}
