package sim

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/reexec"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// A replica as an OS process: the seeds with a killPlan start a copy of
// the test binary that opens the store by URL and forces a refresh; the
// server holds that one request (HoldMatching, by the replica header) at
// the planned stage, and the parent kills the process there with SIGKILL,
// as a node losing power would. Before the rotation nothing is lost but a
// lease the others wait out; after it, only a grace period lets the next
// refresher recover the successor the dead process never stored.

const (
	childEnv     = "TOKENCACHE_SIM_CHILD"
	childReplica = "process"
	// The child's lease and endpoint timeout must outlast process start-up
	// and the hold; the kill comes first.
	childLease   = 1500 * time.Millisecond
	childTimeout = time.Second
)

type killRecord struct {
	at      time.Time
	stage   oauthtest.Stage
	rotated bool // the server rotated the token the process presented
}

func childSpec() string { return os.Getenv(childEnv) }

func (r *run) killProcess(storeURL string) {
	k := r.sc.kill
	sleepUntil(r.start.Add(k.at))
	hold := r.srv.HoldMatching(k.stage, func(req *http.Request) bool { return req.Header.Get(replicaHdr) == childReplica })
	defer hold.Release()
	spec := strings.Join([]string{storeURL}, "|")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := reexec.Command(ctx, r.t.Name(), childEnv, spec)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		r.t.Errorf("sim: starting the replica process: %v", err)
		return
	}
	r.note(childReplica, "replica process started", true)
	select {
	case <-hold.Arrived():
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		r.note(childReplica, "replica process never reached the server; killed", true)
		r.t.Logf("sim: seed %d: the replica process never reached the server:\n%s", r.sc.seed, out.String())
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	hold.Drop()
	rec := &killRecord{at: time.Now(), stage: k.stage, rotated: k.stage == oauthtest.AfterRotate}
	r.mu.Lock()
	r.killed = rec
	r.mu.Unlock()
	r.note(childReplica, fmt.Sprintf("SIGKILL %s", k.stage), true)
}

// runChild is the process replica: it refreshes once and is killed at the
// server. It fails if it lives to see the answer.
func runChild(t testing.TB, spec string) {
	st, err := storage.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	c, err := credentials.New(credentials.Config{
		Store: st, Profile: profile,
		HTTPClient: &http.Client{Transport: &transport{name: childReplica}},
		LeaseTTL:   childLease, RefreshTimeout: childTimeout,
		JournalDir: "-", // killed at the server: it never gets to write one
		Skew:       50 * time.Millisecond, PollInterval: 10 * time.Millisecond, MaxRetries: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		// Whatever the store holds, replace it: the refresh is what the
		// parent waits for at the server.
		tok, _ := c.Token(ctx)
		c.Refresh(ctx, tok)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("sim: the replica process should have been killed at the server")
}

// InChild reports whether this test binary is a replica process a run
// started; Run then does the replica's part and returns nil.
func InChild() bool { return childSpec() != "" }
