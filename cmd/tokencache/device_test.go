package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
)

// deviceLogin is a "tokencache login --device" running as its own process.
type deviceLogin struct {
	cmd                     *exec.Cmd
	userCode, verify, full  string
	stdout                  bytes.Buffer
	mu                      sync.Mutex
	stderr                  strings.Builder
	done                    chan struct{}
	code                    int
	waitErr                 error
	printedBeforeTheWaiting string
}

// startDeviceLogin starts login --device and reads its stderr up to the
// "Waiting" line, collecting the verification URIs and the user code.
func startDeviceLogin(t *testing.T, env []string, args ...string) *deviceLogin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	d := &deviceLogin{done: make(chan struct{})}
	d.cmd = exec.CommandContext(ctx, binary, append([]string{"login", "--device"}, args...)...)
	d.cmd.Env = append(cleanEnv(), env...)
	d.cmd.Stdout = &d.stdout
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var head strings.Builder
	next := ""
	for sc.Scan() {
		line := sc.Text()
		head.WriteString(line + "\n")
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "To authorize profile"):
			next = "verify"
		case strings.HasPrefix(line, "and enter the code"):
			next = "code"
		case strings.HasPrefix(line, "(or open "):
			d.full = strings.TrimSuffix(strings.TrimPrefix(line, "(or open "), ", which carries the code)")
		case trimmed != "" && next == "verify":
			d.verify, next = trimmed, ""
		case trimmed != "" && next == "code":
			d.userCode, next = trimmed, ""
		}
		if strings.HasPrefix(line, "Waiting for the approval") {
			break
		}
	}
	d.printedBeforeTheWaiting = head.String()
	go func() {
		rest, _ := io.ReadAll(stderr)
		d.mu.Lock()
		d.stderr.WriteString(head.String())
		d.stderr.Write(rest)
		d.mu.Unlock()
		d.waitErr = d.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(d.waitErr, &ee) {
			d.code = ee.ExitCode()
		}
		close(d.done)
	}()
	if d.userCode == "" {
		<-d.done
		t.Fatalf("login --device printed no user code:\n%s", d.stderr.String())
	}
	return d
}

func (d *deviceLogin) wait(t *testing.T) (code int, stdout, stderr string) {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		t.Fatal("login --device did not end")
	}
	if d.waitErr != nil && d.code == 0 {
		t.Fatalf("login --device: %v", d.waitErr)
	}
	return d.code, d.stdout.String(), d.stderr.String()
}

// afterPolls runs fn once srv answered n polls for userCode.
func afterPolls(srv *oauthtest.Server, userCode string, n int, fn func()) {
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for len(srv.DevicePolls(userCode)) < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		fn()
	}()
}

func newDeviceIDP(t *testing.T) *idp {
	t.Helper()
	t.Parallel()
	p := newIDP(t, oauthtest.Options{Rotate: true})
	p.AddClient("cli-public", "")
	p.SetDeviceFlow(time.Second, time.Minute)
	return p
}

// TestLoginDeviceApproved: a public client (no secret) authorizes with the
// device flow through the CLI, then refreshes and rotates like any profile.
func TestLoginDeviceApproved(t *testing.T) {
	p := newDeviceIDP(t)
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	d := startDeviceLogin(t, nil, "--store", store, "work", "--device-url", p.DeviceAuthorizationURL(),
		"--token-url", p.TokenURL(), "--client-id", "cli-public", "--scope", "read")
	if d.verify != p.VerificationURL() || d.full != p.VerificationURL()+"?user_code="+d.userCode {
		t.Errorf("printed verification URIs %q, %q:\n%s", d.verify, d.full, d.printedBeforeTheWaiting)
	}
	afterPolls(p.Server, d.userCode, 1, func() { p.ApproveDevice(d.userCode) })
	code, stdout, stderr := d.wait(t)
	if code != 0 || !strings.Contains(stdout, `profile "work" authorized: access token valid until `) {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	// Pending until the approval (one poll, unless the machine is slow
	// enough for the approval to miss the next), then the tokens.
	polls := p.DevicePolls(d.userCode)
	for i, poll := range polls {
		if want := oauthtest.PollPending; i == len(polls)-1 && poll.Result != oauthtest.PollOK || i < len(polls)-1 && poll.Result != want {
			t.Errorf("polls %+v: want pending until the approval, then the tokens", polls)
			break
		}
	}
	if len(polls) < 2 {
		t.Errorf("polls %+v: want at least one pending poll before the approval", polls)
	}
	rec := loadRecord(t, store, "work")
	if !p.Valid(rec.AccessToken.Reveal()) || !p.ValidRefresh(rec.RefreshToken.Reveal()) || rec.ClientSecret != "" || rec.ClientID != "cli-public" {
		t.Fatal("login --device did not store a valid public-client grant")
	}
	if extraString(rec, extraDeviceURL) != p.DeviceAuthorizationURL() {
		t.Error("the device authorization URL was not remembered")
	}
	if strings.Contains(stderr, rec.RefreshToken.Reveal()) || strings.Contains(stdout, rec.AccessToken.Reveal()) {
		t.Error("a token was printed")
	}
	// The grant works: a forced refresh rotates it, with no secret.
	cli(t, nil, "--store", store, "refresh", "work").mustSucceed(t)
	if after := loadRecord(t, store, "work"); after.RefreshToken == rec.RefreshToken || !p.ValidRefresh(after.RefreshToken.Reveal()) {
		t.Error("refresh after login --device did not rotate the grant")
	}
	// The remembered URL serves the next login --device, which replaces
	// the grant (a new authorization).
	d = startDeviceLogin(t, nil, "--store", store, "work")
	p.ApproveDevice(d.userCode)
	if code, _, stderr := d.wait(t); code != 0 {
		t.Fatalf("second login --device: exit %d: %s", code, stderr)
	}
}

func TestLoginDeviceDenied(t *testing.T) {
	p := newDeviceIDP(t)
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	d := startDeviceLogin(t, []string{"PAN_CLIENT_SECRET=" + p.secret}, "--store", store, "--device-url", p.DeviceAuthorizationURL(),
		"--token-url", p.TokenURL(), "--client-id", p.clientID)
	afterPolls(p.Server, d.userCode, 1, func() { p.DenyDevice(d.userCode) })
	code, stdout, stderr := d.wait(t)
	if code != exitOther || stdout != "" || !strings.Contains(stderr, "tokencache: login --device: the authorization was denied; nothing was stored") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if rec := loadRecord(t, store, "default"); rec.RefreshToken != "" || rec.AccessToken != "" {
		t.Error("a denied login stored tokens")
	}
}

func TestLoginDeviceExpired(t *testing.T) {
	p := newDeviceIDP(t)
	p.SetDeviceFlow(time.Second, 2*time.Second)
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	d := startDeviceLogin(t, nil, "--store", store, "--device-url", p.DeviceAuthorizationURL(),
		"--token-url", p.TokenURL(), "--client-id", "cli-public")
	if !strings.Contains(d.printedBeforeTheWaiting, "(the code expires at ") {
		t.Errorf("no expiry shown:\n%s", d.printedBeforeTheWaiting)
	}
	code, _, stderr := d.wait(t)
	if code != exitOther || !strings.Contains(stderr, "the code expired before it was approved; nothing was stored, run login --device again") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// TestLoginDeviceSlowDown: after slow_down the CLI polls five seconds
// further apart (the server would answer slow_down again otherwise).
func TestLoginDeviceSlowDown(t *testing.T) {
	p := newDeviceIDP(t)
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	d := startDeviceLogin(t, nil, "--store", store, "--device-url", p.DeviceAuthorizationURL(),
		"--token-url", p.TokenURL(), "--client-id", "cli-public")
	p.SlowDownDevice(d.userCode)
	afterPolls(p.Server, d.userCode, 1, func() { p.ApproveDevice(d.userCode) })
	if code, _, stderr := d.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	polls := p.DevicePolls(d.userCode)
	if len(polls) != 2 || polls[0].Result != oauthtest.PollSlowDown || polls[1].Result != oauthtest.PollOK {
		t.Fatalf("polls %+v: want slow_down, then the tokens", polls)
	}
	if gap := polls[1].At.Sub(polls[0].At); gap < 6*time.Second {
		t.Errorf("polled %v after slow_down, want at least interval + 5s", gap)
	}
}

// TestLoginDeviceTimeout: --timeout ends the wait with a line that says so.
func TestLoginDeviceTimeout(t *testing.T) {
	p := newDeviceIDP(t)
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	began := time.Now()
	d := startDeviceLogin(t, nil, "--store", store, "--timeout", "2s", "--device-url", p.DeviceAuthorizationURL(),
		"--token-url", p.TokenURL(), "--client-id", "cli-public")
	code, _, stderr := d.wait(t)
	if code != exitOther || !strings.Contains(stderr, "the code was not approved within --timeout 2s; nothing was stored") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("took %v with --timeout 2s", took)
	}
}

// TestLoginDeviceUsage: what login --device refuses before any request.
func TestLoginDeviceUsage(t *testing.T) {
	p := newDeviceIDP(t)
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"login", "--device", "--token-url", p.TokenURL(), "--client-id", "cli-public"}, "has no device authorization URL: give --device-url"},
		{[]string{"login", "--device", "--device-url", "ftp://example.com/x", "--token-url", p.TokenURL(), "--client-id", "cli-public"}, "--device-url"},
		{[]string{"login", "--device", "--port", "8080", "--device-url", p.DeviceAuthorizationURL()}, "--port is for the redirect"},
		{[]string{"login", "--device-url", p.DeviceAuthorizationURL()}, "--device-url is for login --device"},
	} {
		r := cli(t, nil, append([]string{"--store", store}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	// A URL that is not a device authorization endpoint: said at once.
	r := cli(t, nil, "--store", store, "login", "--device", "--device-url", p.URL+"/nowhere", "--token-url", p.TokenURL(), "--client-id", "cli-public")
	if r.code != exitNotEndpoint {
		t.Errorf("wrong device URL: exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(loadRecordOrEmpty(t, store), "nowhere") {
		t.Error("a device URL that failed was remembered")
	}
}

// loadRecordOrEmpty is the profile's extra fields as JSON, or "".
func loadRecordOrEmpty(t *testing.T, store string) string {
	t.Helper()
	rec := loadRecord(t, store, "default")
	return extraString(rec, extraDeviceURL)
}
