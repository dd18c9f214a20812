package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/internal/reexec"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	_ "github.com/tokencache/tokencache/storage/file"
	_ "github.com/tokencache/tokencache/storage/sqlite"
)

// storeURLs are the embedded stores that processes can share.
func storeURLs(t *testing.T) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"file":   "file://" + filepath.Join(dir, "credentials.json"),
		"sqlite": "sqlite://" + filepath.Join(dir, "tokens.db"),
	}
}

// TestStormSharedStores: 8 Credentials on 8 separate connections to one
// store x 100 goroutines, 200 ms endpoint latency, rotation on, 5 expiries.
func TestStormSharedStores(t *testing.T) {
	for name, u := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			credentialstest.Storm(t, func(t testing.TB) *storage.Store {
				st, err := storage.Open(context.Background(), u)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}, credentialstest.StormOptions{})
		})
	}
}

// TestStormProcesses is the same storm with each replica an OS process.
func TestStormProcesses(t *testing.T) {
	for _, name := range []string{"file", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			credentialstest.StormProcesses(t, storeURLs(t)[name], 8, credentialstest.StormOptions{})
		})
	}
}

const killChildEnv = "TOKENCACHE_KILL_CHILD"

// TestKilledLeaseHolder kills a process holding the refresh lease with
// SIGKILL while its refresh request is at the server, before or after the
// server rotated the refresh token.
func TestKilledLeaseHolder(t *testing.T) {
	if spec := os.Getenv(killChildEnv); spec != "" {
		killChild(t, spec)
		return
	}
	cases := []struct {
		name       string
		stage      oauthtest.Stage
		grace      time.Duration
		wantReauth bool
	}{
		{"before-request-reached-server", oauthtest.BeforeRotate, 0, false},
		{"after-rotation-with-grace-period", oauthtest.AfterRotate, time.Minute, false},
		{"after-rotation-without-grace-period", oauthtest.AfterRotate, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const leaseTTL = 2 * time.Second
			srv := oauthtest.NewServer(oauthtest.Options{Rotate: true, ReuseGrace: tc.grace})
			defer srv.Close()
			srv.AddClient("storm-client", "storm-secret")
			u := "sqlite://" + filepath.Join(t.TempDir(), "tokens.db")
			st, err := storage.Open(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			credentialstest.Seed(t, st, "p", srv)

			hold := srv.HoldRefreshes(tc.stage)
			cmd := reexec.Command(context.Background(), "TestKilledLeaseHolder", killChildEnv, fmt.Sprintf("%s|%s", u, leaseTTL))
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-hold.Arrived():
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("child never reached the server:\n%s", out.String())
			}
			rec, _, _ := st.Load(context.Background(), "p")
			if rec.Lease == nil {
				t.Fatal("child is at the server without holding the lease")
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			hold.Drop()

			c, err := credentials.New(credentials.Config{Store: st, Profile: "p", LeaseTTL: leaseTTL,
				Skew: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			tok, err := c.Token(context.Background())
			took := time.Since(start)
			stats := srv.Stats()
			if tc.wantReauth {
				if !errors.Is(err, credentials.ErrReauthRequired) {
					t.Fatalf("got %v, want ErrReauthRequired", err)
				}
				calls := srv.Stats().TokenCalls
				if _, err := c.Token(context.Background()); !errors.Is(err, credentials.ErrReauthRequired) || srv.Stats().TokenCalls != calls {
					t.Fatalf("second Token: %v; must fail fast without calling the endpoint", err)
				}
				return
			}
			if err != nil || !srv.Valid(tok.AccessToken.Reveal()) {
				t.Fatalf("survivor: %v", err)
			}
			// One lease TTL from when the survivor first saw the lease,
			// plus slack for a loaded machine.
			if took > leaseTTL+1500*time.Millisecond {
				t.Fatalf("survivor took %v, want at most one lease TTL (%v)", took, leaseTTL)
			}
			if stats.ReuseDetections != 0 {
				t.Fatalf("%d reuse detections", stats.ReuseDetections)
			}
			rec, _, _ = st.Load(context.Background(), "p")
			if !srv.ValidRefresh(rec.RefreshToken.Reveal()) || rec.Lease != nil {
				t.Fatal("stored refresh token is not usable after recovery")
			}
			t.Logf("survivor took over after %v", took.Round(time.Millisecond))
		})
	}
}

// killChild takes the lease and calls the endpoint; the parent kills it there.
func killChild(t *testing.T, spec string) {
	u, ttl, _ := strings.Cut(spec, "|")
	leaseTTL, _ := time.ParseDuration(ttl)
	st, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", LeaseTTL: leaseTTL})
	if err != nil {
		t.Fatal(err)
	}
	c.Token(context.Background())
	t.Fatal("the child should have been killed at the server")
}
