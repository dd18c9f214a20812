package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// loginSession is a running "tokencache login --no-browser": its printed
// authorization URL and redirect URI, and a way to wait for it.
type loginSession struct {
	cmd               *exec.Cmd
	authURL, redirect string
	stdout, stderr    *bytes.Buffer
	done              chan struct{}
}

func startLogin(t *testing.T, env []string, args ...string) *loginSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary, append(args, "login", "--no-browser")...)
	cmd.Env = append(cleanEnv(), env...)
	s := &loginSession{cmd: cmd, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = s.stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		s.stderr.WriteString(line + "\n")
		if u := strings.TrimSpace(line); strings.Contains(u, "?response_type=") || strings.Contains(u, "&response_type=") {
			s.authURL = u
		}
		if _, after, ok := strings.Cut(line, "Waiting for the redirect to "); ok {
			s.redirect = strings.TrimSuffix(after, " ...")
			break
		}
	}
	var mu sync.Mutex
	go func() {
		defer close(s.done)
		mu.Lock()
		defer mu.Unlock()
		io.Copy(s.stderr, pipe)
	}()
	if s.redirect == "" || s.authURL == "" {
		cmd.Wait()
		t.Fatalf("login printed no authorization URL or redirect:\n%s", s.stderr)
	}
	return s
}

// wait ends the login and returns its exit code.
func (s *loginSession) wait(t *testing.T) int {
	t.Helper()
	<-s.done
	err := s.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

func browse(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPublicClientEndToEnd (issue 13, 1): a public client (no secret, RFC
// 6749 §2.1) logs in with PKCE, then token refreshes with client_id in the
// body; before, token exited 9 "missing client_secret".
func TestPublicClientEndToEnd(t *testing.T) {
	s := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(s.Close)
	s.AddClient("app", "")
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))

	l := startLogin(t, nil, "--store", store, "--authorize-url", s.AuthorizeURL(), "--token-url", s.TokenURL(), "--client-id", "app")
	if code, page := browse(t, l.authURL); code != http.StatusOK {
		t.Fatalf("callback page %d: %s", code, page)
	}
	if code := l.wait(t); code != 0 {
		t.Fatalf("login exit %d: %s", code, l.stderr)
	}
	rec := loadRecord(t, store, "default")
	if rec.ClientSecret != "" || !s.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Fatal("login did not store a public client's grant")
	}
	// Force a refresh: the stored token must be replaced.
	r := cli(t, nil, "--store", store, "refresh")
	if r.code != 0 {
		t.Fatalf("refresh of a public client: exit %d: %s", r.code, r.stderr)
	}
	tok := strings.TrimSpace(cli(t, nil, "--store", store, "token").mustSucceed(t).stdout)
	if tok == rec.AccessToken.Reveal() || !s.Valid(tok) {
		t.Fatal("token after refresh is not a new, valid token")
	}
	if st := s.Stats(); st.RefreshCalls != 1 {
		t.Errorf("%d refresh calls, want 1", st.RefreshCalls)
	}
}

// TestPublicClientInitAndStorm: init without a secret gives no "cannot
// refresh" note, and 16 token processes on the public profile cost one
// refresh.
func TestPublicClientInitAndStorm(t *testing.T) {
	s := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(s.Close)
	s.AddClient("app", "")
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	rt := s.IssueRefreshToken("app")
	r := cli(t, []string{"PAN_REFRESH_TOKEN=" + rt}, "--store", store, "init", "--token-url", s.TokenURL(), "--client-id", "app",
		"--access-token", "expired", "--expires-in", "-1m").mustSucceed(t)
	if strings.Contains(r.stderr, "cannot refresh") {
		t.Errorf("init of a public client warns: %s", r.stderr)
	}
	const n = 16
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = cli(t, nil, "--store", store, "token") })
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || strings.TrimSpace(r.stdout) != strings.TrimSpace(results[0].stdout) {
			t.Fatalf("process %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
	if st := s.Stats(); st.RefreshCalls != 1 || st.ReuseDetections != 0 {
		t.Errorf("%d refresh calls, %d reuse detections; want 1, 0", st.RefreshCalls, st.ReuseDetections)
	}
}

// wrongURLServer answers every request with status and a JSON body
// without an OAuth error code, as an API gateway does for a wrong path.
func wrongURLServer(t *testing.T, status int) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"message":"no route"}`)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/oauth2/token"
}

// TestWrongURLHints (issue 13, 3): 403 and 404 from the token URL say to
// check it and exit 10 (before: exit 1 and "answered 404"); revoke's errors
// are printed once and name the revocation URL.
func TestWrongURLHints(t *testing.T) {
	for _, status := range []int{403, 404} {
		u := wrongURLServer(t, status)
		store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
		cli(t, []string{"PAN_CLIENT_ID=a", "PAN_CLIENT_SECRET=b", "PAN_REFRESH_TOKEN=r", "PAN_ACCESS_TOKEN=x"},
			"--store", store, "init", "--token-url", u, "--revoke-url", u, "--expires-in", "-1m").mustSucceed(t)
		r := cli(t, nil, "--store", store, "token")
		if r.code != exitNotEndpoint || !strings.Contains(r.stderr, "check the token URL") {
			t.Errorf("token, %d: exit %d, %s", status, r.code, r.stderr)
		}
		r = cli(t, nil, "--store", store, "revoke")
		if r.code != exitNotEndpoint || !strings.Contains(r.stderr, "check the revocation URL") || strings.Contains(r.stderr, "token URL") {
			t.Errorf("revoke, %d: exit %d, %s", status, r.code, r.stderr)
		}
		if n := strings.Count(r.stderr, "answered"); n != 1 {
			t.Errorf("revoke, %d: the error is printed %d times: %s", status, n, r.stderr)
		}
	}
}

// plantLease writes a lease as a refresher on another machine would, through
// storage.Store (Replace: Update keeps leases).
func plantLease(t *testing.T, storeURL, profile, owner string, ttl time.Duration) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, rev, err := st.Load(ctx, profile)
	if err != nil {
		t.Fatal(err)
	}
	next := rec.Clone()
	next.Lease = &storage.Lease{Owner: owner, Until: time.Now().Add(ttl), TTL: storage.Duration(ttl)}
	if _, err := st.Replace(ctx, rec, rev, next); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseWaitIsAnnounced (issue 13, 4): token waiting on a dead holder's
// lease says once who holds it and for how long at most, then takes over.
func TestLeaseWaitIsAnnounced(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	p.initExpired(t, store, "default")
	plantLease(t, store, "default", "deadhost/4242/0011223344556677", 3*time.Second)
	// A waiter honours the longer of its own lease TTL and the holder's.
	r := cli(t, nil, "--store", store, "--lease-ttl", "3s", "--refresh-timeout", "1s", "token").mustSucceed(t)
	t.Logf("stderr: %s", r.stderr)
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "pid 4242 on host deadhost") || !strings.Contains(r.stderr, "at most") {
		t.Errorf("stderr while waiting on a lease: %q", r.stderr)
	}
	if p.Stats().RefreshCalls != 1 {
		t.Errorf("%d refresh calls, want 1", p.Stats().RefreshCalls)
	}
}

// TestTimeoutBoundsHungEndpoint (issue 13, 4): --timeout 2s ends the command
// within about 2 s against an endpoint that never answers (before: 10 s, the
// refresh timeout) and the lease is released.
func TestTimeoutBoundsHungEndpoint(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hung.Close() })
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	cli(t, []string{"PAN_CLIENT_ID=a", "PAN_CLIENT_SECRET=b", "PAN_REFRESH_TOKEN=r"}, "--store", store, "init", "--token-url", hung.URL).mustSucceed(t)
	start := time.Now()
	r := cli(t, nil, "--store", store, "--timeout", "2s", "token")
	took := time.Since(start)
	if r.code != exitTemporary || took > 4*time.Second {
		t.Errorf("token --timeout 2s against a hung endpoint: exit %d after %v: %s", r.code, took, r.stderr)
	}
	if rec := loadRecord(t, store, "default"); rec.Lease != nil {
		t.Errorf("lease left behind: %+v", rec.Lease)
	}
}

// TestLeaseClear (issue 13, 4): an operator clears a dead holder's lease
// and the next token refreshes at once; a lease that changed between read
// and write is not cleared.
func TestLeaseClear(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	p.initExpired(t, store, "default")
	plantLease(t, store, "default", "deadhost/4242/0011223344556677", 10*time.Minute)
	if r := cli(t, nil, "--store", store, "lease").mustSucceed(t); !strings.Contains(r.stdout, "pid 4242 on host deadhost") {
		t.Errorf("lease: %q", r.stdout)
	}
	r := cli(t, nil, "--store", store, "--timeout", "1500ms", "token")
	t.Logf("under a live lease: exit %d, stderr:\n%s", r.code, r.stderr)
	if r.code != exitTemporary || !strings.Contains(r.stderr, "pid 4242 on host deadhost") || !strings.Contains(r.stderr, "gave up after --timeout 1.5s") {
		t.Fatalf("token under a live lease with --timeout 1.5s: exit %d, stderr %q", r.code, r.stderr)
	}
	r = cli(t, nil, "--store", store, "lease", "clear").mustSucceed(t)
	if !strings.Contains(r.stdout, "cleared") {
		t.Errorf("lease clear: %q", r.stdout)
	}
	if rec := loadRecord(t, store, "default"); rec.Lease != nil || rec.ClientSecret.Reveal() != p.secret {
		t.Fatalf("after lease clear: lease %+v, or the record changed", rec.Lease)
	}
	start := time.Now()
	cli(t, nil, "--store", store, "token").mustSucceed(t)
	if time.Since(start) > 5*time.Second {
		t.Error("token after lease clear still waited")
	}
	if r := cli(t, nil, "--store", store, "unlock"); r.code != exitUsage {
		t.Errorf("unknown top-level unlock: exit %d", r.code)
	}
	if r := cli(t, nil, "--store", store, "lease", "unlock").mustSucceed(t); !strings.Contains(r.stdout, "no refresh lease") {
		t.Errorf("lease unlock without a lease: %q", r.stdout)
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestOneLineOnStderr (issue 13, 5): unreachable stores say so in one line
// of ours: no go-redis pool.go lines (before: four of them), no AWS SDK
// warnings (AWS_EC2_METADATA_DISABLED is set by cleanEnv, so the SDK never
// dials the instance metadata address), and MongoDB's server selection
// bounded by --timeout, reported as the store being down (before: exit 6
// "token endpoint unreachable" at the deadline).
func TestOneLineOnStderr(t *testing.T) {
	addr := closedPort(t)
	for _, tc := range []struct {
		name, store string
		args        []string
	}{
		{"redis", "redis://" + addr + "/0", []string{"list"}},
		{"mongodb", "mongodb://" + addr + "/db", []string{"list"}},
		{"kms", "kms+" + fileURL(filepath.Join(t.TempDir(), "k.json")) + "?kms_key_id=alias/x&kms_region=us-east-1&kms_endpoint=http://" + addr,
			[]string{"init", "--token-url", "https://idp.example/token", "--client-id", "app"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := cli(t, nil, append([]string{"--store", tc.store, "--timeout", "3s"}, tc.args...)...)
			took := time.Since(start)
			if r.code != exitStoreDown || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "tokencache: store ") {
				t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if strings.Contains(r.stderr, "current topology") {
				t.Errorf("the driver's server list on stderr: %s", r.stderr)
			}
			// Bounded by --timeout (MongoDB's own server selection waits
			// 30 s), with slack for a loaded machine.
			if took > 10*time.Second {
				t.Errorf("took %v with --timeout 3s", took)
			}
		})
	}
}

// cliIn runs the binary in dir.
func cliIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDailyPapercuts (issue 13, 6), each subtest one item of the issue.
func TestDailyPapercuts(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	secrets := []string{"PAN_CLIENT_ID=" + p.clientID, "PAN_CLIENT_SECRET=" + p.secret}

	t.Run("profile as argument and -p", func(t *testing.T) {
		store := fileURL(filepath.Join(t.TempDir(), "c.json"))
		cli(t, append(secrets, "PAN_REFRESH_TOKEN="+p.IssueRefreshToken(p.clientID)), "--store", store, "init", "work", "--token-url", p.TokenURL()).mustSucceed(t)
		tok := strings.TrimSpace(cli(t, nil, "--store", store, "token", "work").mustSucceed(t).stdout)
		if !p.Valid(tok) {
			t.Error("token work: not a valid token")
		}
		if r := cli(t, nil, "--store", store, "show", "-p", "work").mustSucceed(t); !strings.Contains(r.stdout, "work") {
			t.Errorf("show -p work: %s", r.stdout)
		}
		if r := cli(t, nil, "--store", store, "-p", "work", "token", "other"); r.code != exitUsage {
			t.Errorf("two different profiles: exit %d", r.code)
		}
	})
	t.Run("memory store refused by init", func(t *testing.T) {
		r := cli(t, secrets, "--store", "memory://x", "init", "--token-url", p.TokenURL())
		if r.code != exitUsage || !strings.Contains(r.stderr, "memory://") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("profile name limit in bytes", func(t *testing.T) {
		r := cli(t, nil, "--store", fileURL(filepath.Join(t.TempDir(), "c.json")), "-p", strings.Repeat("é", 150), "init", "--client-id", "x")
		if r.code != exitUsage || !strings.Contains(r.stderr, "300 bytes") || !strings.Contains(r.stderr, "limit is 200 bytes") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("read-only commands never create a store", func(t *testing.T) {
		dir := t.TempDir()
		for _, store := range []string{sqliteURL(filepath.Join(dir, "typo", "t.db")), fileURL(filepath.Join(dir, "typo.json"))} {
			for _, args := range [][]string{{"list"}, {"show"}, {"token"}, {"lease"}} {
				r := cli(t, nil, append([]string{"--store", store}, args...)...)
				if r.code != exitNotFound || !strings.Contains(r.stderr, "does not exist") {
					t.Errorf("%s %v: exit %d: %s", store, args, r.code, r.stderr)
				}
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("read-only commands created %v", entries)
		}
	})
	t.Run("relative PAN_CREDENTIALS_DBFILE", func(t *testing.T) {
		dir := t.TempDir()
		cliIn(t, dir, append(secrets, "PAN_CREDENTIALS_DBFILE=rel.json"), "init", "--token-url", p.TokenURL()).mustSucceed(t)
		r := cliIn(t, dir, []string{"PAN_CREDENTIALS_DBFILE=rel.json"}, "show").mustSucceed(t)
		if !strings.Contains(r.stdout, fileURL(filepath.Join(dir, "rel.json"))) {
			t.Errorf("show: %s", r.stdout)
		}
	})
	t.Run("show --store file: prints the resolved path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.json")
		env := []string{"PAN_CREDENTIALS_DBFILE=" + path}
		cli(t, append(env, secrets...), "--store", "file:", "init", "--token-url", p.TokenURL()).mustSucceed(t)
		if r := cli(t, env, "--store", "file:", "show").mustSucceed(t); !strings.Contains(r.stdout, "store:          "+fileURL(path)) {
			t.Errorf("show: %s", r.stdout)
		}
	})
	t.Run("--from-file names unknown keys", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "cred-init.json")
		os.WriteFile(f, []byte(`{"client_id":"a","clientsecret":"hidden-value","refreshtoken":"r"}`), 0o600)
		r := cli(t, nil, "--store", fileURL(filepath.Join(t.TempDir(), "c.json")), "init", "--from-file", f)
		if r.code != exitUsage || !strings.Contains(r.stderr, `"clientsecret", "refreshtoken"`) || strings.Contains(r.stderr, "hidden-value") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("token after revoke suggests login", func(t *testing.T) {
		store := fileURL(filepath.Join(t.TempDir(), "c.json"))
		p.initExpired(t, store, "default")
		cli(t, nil, "--store", store, "revoke").mustSucceed(t)
		r := cli(t, nil, "--store", store, "token")
		if r.code != exitPartialCred || !strings.Contains(r.stderr, `run "tokencache login"`) {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("did you mean", func(t *testing.T) {
		r := cli(t, nil, "tokn")
		if r.code != exitUsage || !strings.Contains(r.stderr, `did you mean "token"?`) || strings.Contains(r.stderr, "; ;") {
			t.Errorf("exit %d: %q", r.code, r.stderr)
		}
	})
	t.Run("init help", func(t *testing.T) {
		if r := cli(t, nil, "init", "--help").mustSucceed(t); strings.Contains(r.stdout, "seed 001") {
			t.Error("init --help mentions seed 001")
		}
	})
	t.Run("copy conflict exit code", func(t *testing.T) {
		dir := t.TempDir()
		src, dst := fileURL(filepath.Join(dir, "a.json")), fileURL(filepath.Join(dir, "b.json"))
		p.initExpired(t, src, "default")
		p.initExpired(t, dst, "default")
		if r := cli(t, nil, "--store", src, "copy", "--to", dst); r.code != exitConflict || !strings.Contains(r.stderr, "already has") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
}

// TestLoginToleratesOneStrayRedirect (issue 13, 6): a redirect with another
// state (a stale tab) is answered 400 and ignored; the real one completes
// the login.
func TestLoginToleratesOneStrayRedirect(t *testing.T) {
	p := newIDP(t, oauthtest.Options{})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	l := startLogin(t, []string{"PAN_CLIENT_SECRET=" + p.secret}, "--store", store, "--authorize-url", p.AuthorizeURL(),
		"--token-url", p.TokenURL(), "--client-id", p.clientID)
	if code, _ := browse(t, l.redirect+"?code=stale&state=stale"); code != http.StatusBadRequest {
		t.Errorf("stray redirect answered %d", code)
	}
	if code, page := browse(t, l.authURL); code != http.StatusOK {
		t.Fatalf("callback page %d: %s", code, page)
	}
	if code := l.wait(t); code != 0 {
		t.Fatalf("login exit %d: %s", code, l.stderr)
	}
	if !strings.Contains(l.stderr.String(), "ignored a redirect") {
		t.Errorf("stderr: %s", l.stderr)
	}
	if p.Stats().TokenCalls != 1 {
		t.Errorf("%d token calls, want 1 (the stray code must not be exchanged)", p.Stats().TokenCalls)
	}
}

// TestSQLiteUnwritableDirectory (issue 13, 6): a database that cannot be
// created says why (before: "no such file or directory"). Root writes
// anywhere, so as root the command runs as nobody (setpriv, util-linux).
func TestSQLiteUnwritableDirectory(t *testing.T) {
	base, err := os.MkdirTemp("", "tokencache-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(base, "ro"), 0o755); os.RemoveAll(base) })
	bin := filepath.Join(base, "tokencache")
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(base, "ro")
	os.Mkdir(ro, 0o555)
	os.Chmod(ro, 0o555)
	os.Chmod(base, 0o755)
	args := []string{bin, "--store", sqliteURL(filepath.Join(ro, "t.db")), "init", "--client-id", "x"}
	if os.Geteuid() == 0 {
		args = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(cleanEnv(), "HOME="+base)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitStoreDown {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "directory "+ro+": permission denied") {
		t.Errorf("stderr: %s", out)
	}
}

// TestPublicClientWireFormat (issue 13, 1): a public client's refresh sends
// client_id in the body and no Authorization header (RFC 6749 §2.3, §3.2.1),
// which oauthtest accepts either way; a recorder shows what was sent.
func TestPublicClientWireFormat(t *testing.T) {
	var mu sync.Mutex
	var auth, clientID, secretSent string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		auth, clientID, secretSent = r.Header.Get("Authorization"), r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"new-access","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(rec.Close)
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	cli(t, []string{"PAN_REFRESH_TOKEN=r"}, "--store", store, "init", "--token-url", rec.URL, "--client-id", "app").mustSucceed(t)
	if tok := strings.TrimSpace(cli(t, nil, "--store", store, "token").mustSucceed(t).stdout); tok != "new-access" {
		t.Fatalf("token: %q", tok)
	}
	mu.Lock()
	defer mu.Unlock()
	if auth != "" || clientID != "app" || secretSent != "" {
		t.Errorf("public client sent Authorization %q, client_id %q, client_secret %q; want none, app, none", auth, clientID, secretSent)
	}
}
