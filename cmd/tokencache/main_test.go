package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// binary is the tokencache command built once for the black-box tests:
// they run it as separate processes, as users and scripts do.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokencache-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tokencache")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tokencache:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary with a clean environment (no PAN_* or TOKENCACHE_*
// from the developer's shell) plus env.
func cli(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running tokencache %v: %v", args, err)
	}
	return r
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PAN_") && !strings.HasPrefix(kv, "TOKENCACHE_") {
			env = append(env, kv)
		}
	}
	// Never the developer's own credentials.json, and never the EC2
	// instance metadata address (the AWS SDK dials it for credentials).
	return append(env, "HOME="+os.TempDir()+"/tokencache-test-nohome", "AWS_EC2_METADATA_DISABLED=true")
}

func (r result) mustSucceed(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	return r
}

func fileURL(path string) string { return (&url.URL{Scheme: "file", Path: path}).String() }

func sqliteURL(path string) string { return (&url.URL{Scheme: "sqlite", Path: path}).String() }

// idp is an oauthtest server with one registered client.
type idp struct {
	*oauthtest.Server
	clientID, secret string
}

func newIDP(t *testing.T, opts oauthtest.Options) *idp {
	t.Helper()
	s := oauthtest.NewServer(opts)
	t.Cleanup(s.Close)
	p := &idp{Server: s, clientID: "cli-test", secret: "s3cret-client-value"}
	s.AddClient(p.clientID, p.secret)
	return p
}

// initExpired creates a profile with a fresh grant and an expired access
// token, through the CLI itself, secrets by environment.
func (p *idp) initExpired(t *testing.T, store, profile string) (refreshToken string) {
	t.Helper()
	rt := p.IssueRefreshToken(p.clientID)
	cli(t, []string{"PAN_CLIENT_ID=" + p.clientID, "PAN_CLIENT_SECRET=" + p.secret, "PAN_REFRESH_TOKEN=" + rt},
		"--store", store, "--profile", profile, "init", "--token-url", p.TokenURL(), "--revoke-url", p.RevokeURL(),
		"--access-token", "expired-access-token", "--expires-in", "-1m").mustSucceed(t)
	return rt
}

func loadRecord(t *testing.T, storeURL, profile string) *storage.Record {
	t.Helper()
	st, err := storage.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, _, err := st.Load(context.Background(), profile)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
