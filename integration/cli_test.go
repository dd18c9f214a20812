package integration_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// TestCLITokenThroughStoreOutage is issue 11's case 2 through the CLI: the
// Redis server is stopped while "tokencache token" has the refresh at the
// token endpoint, after the server rotated the refresh token.
//
//   - Back within --timeout: the command waits for it, stores the rotated
//     token, prints the access token and exits 0.
//   - Down beyond --timeout: the command exits non-zero without printing,
//     names the recovery journal entry, and the next command writes it to
//     the store before anything else. One refresh, no reuse detection.
func TestCLITokenThroughStoreOutage(t *testing.T) {
	servers.SkipShort(t)
	bin := buildCLI(t)
	for _, tc := range []struct {
		name   string
		down   time.Duration
		exit   int
		stdout bool
	}{
		{"back within the timeout", 4 * time.Second, 0, true},
		{"down beyond the timeout", 0, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv, err := servers.StartRedis(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Terminate(context.Background()) })
			tokens := oauthtest.NewServer(oauthtest.Options{Rotate: true})
			defer tokens.Close()
			tokens.AddClient("cli", "cli-secret")
			journal := t.TempDir()
			run := func(timeout time.Duration, env []string, args ...string) (string, string, int) {
				cmd := exec.Command(bin, append([]string{"--store", srv.URL, "--timeout", timeout.String()}, args...)...)
				cmd.Env = append(os.Environ(), append(env, "TOKENCACHE_JOURNAL_DIR="+journal, "HOME="+t.TempDir())...)
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				err := cmd.Run()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				return out.String(), errb.String(), code
			}
			if _, stderr, code := run(time.Minute, []string{"PAN_CLIENT_ID=cli", "PAN_CLIENT_SECRET=cli-secret", "PAN_REFRESH_TOKEN=" + tokens.IssueRefreshToken("cli")},
				"init", "--token-url", tokens.TokenURL()); code != 0 {
				t.Fatalf("init: %d %s", code, stderr)
			}

			hold := tokens.HoldRefreshes(oauthtest.AfterRotate)
			go func() {
				<-hold.Arrived()
				if err := srv.Stop(ctx); err != nil {
					t.Error(err)
				}
				hold.Release()
				if tc.down > 0 {
					time.Sleep(tc.down)
					if err := srv.Start(ctx); err != nil {
						t.Error(err)
					}
				}
			}()
			timeout := 40 * time.Second
			if tc.down == 0 {
				timeout = 8 * time.Second
			}
			stdout, stderr, code := run(timeout, nil, "token")
			if code != tc.exit || (stdout != "") != tc.stdout {
				t.Fatalf("token: exit %d (want %d), stdout %q, stderr %q", code, tc.exit, stdout, stderr)
			}
			if tc.down == 0 {
				entries, _ := filepath.Glob(filepath.Join(journal, "*.json"))
				if len(entries) != 1 || !strings.Contains(stderr, entries[0]) {
					t.Fatalf("stderr %q does not name the journal entry (%v)", stderr, entries)
				}
				if err := srv.Start(ctx); err != nil {
					t.Fatal(err)
				}
				if _, stderr, code := run(time.Minute, nil, "token"); code != 0 {
					t.Fatalf("token after the outage: %d %s", code, stderr)
				}
				if entries, _ := filepath.Glob(filepath.Join(journal, "*.json")); len(entries) != 0 {
					t.Fatalf("journal entries left after replay: %v", entries)
				}
			}
			st, err := storage.Open(ctx, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rec, _, err := st.Load(ctx, "default")
			if err != nil || !tokens.ValidRefresh(rec.RefreshToken.Reveal()) {
				t.Fatalf("after the outage the store does not hold the live refresh token (%v)", err)
			}
			if strings.Contains(stderr, rec.AccessToken.Reveal()) || strings.Contains(stderr, rec.RefreshToken.Reveal()) {
				t.Fatal("stderr leaks a token")
			}
			if _, stderr, code := run(time.Minute, nil, "refresh"); code != 0 {
				t.Fatalf("refresh: %d %s", code, stderr)
			}
			if s := tokens.Stats(); s.RefreshCalls != 2 || s.ReuseDetections != 0 {
				t.Fatalf("%d refreshes and %d reuse detections; want 2 and 0", s.RefreshCalls, s.ReuseDetections)
			}
		})
	}
}

// buildCLI builds the tokencache command once per test binary.
func buildCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tokencache-integration-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "tokencache")
		// Built in the main module (the parent directory: tests run in
		// their package's), whose go.sum covers the command's
		// dependencies; this module's covers only what its tests import.
		build := exec.Command("go", "build", "-o", cliPath, "./cmd/tokencache")
		build.Dir = ".."
		out, err := build.CombinedOutput()
		if err != nil {
			cliErr = &buildError{out: string(out), err: err}
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "building tokencache: " + e.err.Error() + "\n" + e.out }
