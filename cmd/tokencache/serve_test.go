package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/tokencache/tokencache/oauthtest"
)

// agentProc is one "tokencache serve" process.
type agentProc struct {
	cmd    *exec.Cmd
	where  string // "unix:PATH" or "tcp:ADDR", from its first stdout line
	base   string
	client *http.Client
	key    string
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent starts the binary with args (global flags then "serve" and
// its flags) and waits for it to say where it listens. It is stopped with
// SIGTERM at cleanup unless the test stopped it.
func startAgent(t *testing.T, env []string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	p := &agentProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, out)
	}()
	go func() {
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case line := <-lines:
		where, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
		if !ok {
			<-p.done
			t.Fatalf("agent did not start: stdout %q, exit %d, stderr: %s", line, p.code, p.stderr)
		}
		p.where = where
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not start within 30 s; stderr: %s", p.stderr)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	if sock, ok := strings.CutPrefix(p.where, "unix:"); ok {
		p.base = "http://localhost"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}
	} else {
		p.base = "http://" + strings.TrimPrefix(p.where, "tcp:")
	}
	p.client = &http.Client{Transport: tr, Timeout: time.Minute}
	return p
}

// get sends a request with the agent header and, when set, the key.
func (p *agentProc) do(t *testing.T, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tokencache-Agent", "1")
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop sends SIGTERM and returns the exit code.
func (p *agentProc) stop(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("agent did not stop within 60 s of SIGTERM; stderr: %s", p.stderr)
	}
	return p.code
}

func accessToken(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.AccessToken == "" {
		t.Fatalf("not a token response: %q", body)
	}
	return v.AccessToken
}

func journalEnv(t *testing.T) []string {
	return []string{"TOKENCACHE_JOURNAL_DIR=" + filepath.Join(t.TempDir(), "journal")}
}

func TestServeUnixSocket(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := sqliteURL(filepath.Join(dir, "tokens.db"))
	p.initExpired(t, store, "default")
	p.initExpired(t, store, "other")
	p.ResetStats()
	sock := filepath.Join(dir, "run", "agent.sock")
	a := startAgent(t, journalEnv(t), "--store", store, "serve", "--socket", sock)
	if a.where != "unix:"+sock {
		t.Errorf("listening on %q, want unix:%s", a.where, sock)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v %v, want a 0600 socket", fi.Mode(), err)
	}
	code, body := a.do(t, "GET", "/v1/token/default", "", nil)
	if code != 200 {
		t.Fatalf("token: %d %s", code, body)
	}
	tok := accessToken(t, body)
	for _, k := range []string{`"token_type":"Bearer"`, `"expires_in":`, `"expiry":"`} {
		if !strings.Contains(body, k) {
			t.Errorf("token JSON lacks %s: %s", k, body)
		}
	}
	if !p.Valid(tok) {
		t.Error("the served token is not valid at the server")
	}
	if code, raw := a.do(t, "GET", "/v1/token/default/raw", "", nil); code != 200 || raw != tok {
		t.Errorf("raw: %d %q", code, raw)
	}
	// Only --profile (default) is served unless --allow says otherwise.
	if code, body := a.do(t, "GET", "/v1/token/other", "", nil); code != 403 {
		t.Errorf("a profile not on the allow-list: %d %s", code, body)
	}
	if code, body := a.do(t, "GET", "/readyz", "", nil); code != 200 {
		t.Errorf("readyz: %d %s", code, body)
	}
	if code, _ := a.do(t, "GET", "/v1/token/default", "", map[string]string{"Tokencache-Agent": ""}); code != 400 {
		t.Errorf("missing header: %d, want 400", code)
	}
	// The CLI and the agent share the store: no second refresh.
	if r := cli(t, journalEnv(t), "--store", store, "token").mustSucceed(t); strings.TrimSpace(r.stdout) != tok {
		t.Error("tokencache token printed another token than the agent serves")
	}
	if st := p.Stats(); st.RefreshCalls != 1 {
		t.Errorf("%d refreshes, want 1", st.RefreshCalls)
	}
	if code := a.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr: %s", code, a.stderr)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after shutdown: %v", err)
	}
}

func writeKey(t *testing.T, mode os.FileMode, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.key")
	if err := os.WriteFile(path, []byte(key+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
	return path
}

func TestServeLoopbackWithKey(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := sqliteURL(filepath.Join(dir, "tokens.db"))
	p.initExpired(t, store, "default")
	p.initExpired(t, store, "other")
	const key = "k3y-0123456789abcdef-secret"
	keyFile := writeKey(t, 0o600, key)

	t.Run("refused configurations", func(t *testing.T) {
		for name, args := range map[string][]string{
			"no key file":           {"--tcp", "127.0.0.1:0"},
			"key file mode 0644":    {"--tcp", "127.0.0.1:0", "--key-file", writeKey(t, 0o644, key)},
			"short key":             {"--tcp", "127.0.0.1:0", "--key-file", writeKey(t, 0o600, "short")},
			"non-loopback address":  {"--tcp", "0.0.0.0:0", "--key-file", keyFile},
			"unspecified address":   {"--tcp", ":0", "--key-file", keyFile},
			"both socket and tcp":   {"--tcp", "127.0.0.1:0", "--key-file", keyFile, "--socket", filepath.Join(dir, "s")},
			"missing key file":      {"--tcp", "127.0.0.1:0", "--key-file", filepath.Join(dir, "nosuch")},
			"malformed allow entry": {"--tcp", "127.0.0.1:0", "--key-file", keyFile, "--allow", "a\tb,"},
		} {
			r := cli(t, journalEnv(t), append([]string{"--store", store, "serve"}, args...)...)
			if r.code != exitUsage || r.stdout != "" {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and no listener", name, r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stderr, key) {
				t.Errorf("%s: the key is in the error", name)
			}
		}
	})

	a := startAgent(t, journalEnv(t), "--store", store, "serve", "--tcp", "127.0.0.1:0", "--key-file", keyFile, "--allow", "default")
	if !strings.HasPrefix(a.where, "tcp:127.0.0.1:") {
		t.Fatalf("listening on %q", a.where)
	}
	for _, tc := range []struct {
		name string
		key  string
		hdr  map[string]string
		path string
		want int
	}{
		{"key and header", key, nil, "/v1/token/default", 200},
		{"no key", "", nil, "/v1/token/default", 401},
		{"wrong key", key + "x", nil, "/v1/token/default", 401},
		{"missing header", key, map[string]string{"Tokencache-Agent": ""}, "/v1/token/default", 400},
		{"not on the allow-list", key, nil, "/v1/token/other", 403},
		{"forwarded by a proxy", key, map[string]string{"X-Forwarded-For": "10.1.2.3"}, "/v1/token/default", 403},
		{"from a browser page", key, map[string]string{"Origin": "http://localhost:3000"}, "/v1/token/default", 403},
		{"metrics without key", "", nil, "/metrics", 401},
		{"healthz without anything", "", map[string]string{"Tokencache-Agent": ""}, "/healthz", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.key = tc.key
			code, body := a.do(t, "GET", tc.path, "", tc.hdr)
			if code != tc.want {
				t.Errorf("%d %s, want %d", code, body, tc.want)
			}
			if code == 200 && tc.path == "/v1/token/default" && !p.Valid(accessToken(t, body)) {
				t.Error("invalid token served")
			}
			if strings.Contains(body, key) {
				t.Error("a response shows the agent key")
			}
		})
	}
	a.key = key
	_, m := a.do(t, "GET", "/metrics", "", nil)
	for _, want := range []string{`tokencache_agent_requests_total{route="other",code="401"} 3`, `tokencache_agent_tokens_served_total{profile="default"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	if code := a.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr: %s", code, a.stderr)
	}
	if strings.Contains(a.stderr.String(), key) {
		t.Error("the key is in the agent's log")
	}
}

// TestServeStormOneRefresh: 8 agent processes share a store, each with 200
// concurrent clients, on a profile whose access token has expired, against
// a server that rotates refresh tokens and revokes a grant whose spent
// token is presented again. One refresh reaches the server, none is a
// reuse, and all 1600 clients get its token.
func TestServeStormOneRefresh(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(dir string) string
	}{
		{"sqlite", func(dir string) string { return sqliteURL(filepath.Join(dir, "tokens.db")) }},
		{"file", func(dir string) string { return fileURL(filepath.Join(dir, "credentials.json")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newIDP(t, oauthtest.Options{Rotate: true})
			dir := t.TempDir()
			store := tc.store(dir)
			p.initExpired(t, store, "default")
			p.ResetStats()
			p.SetLatency(50 * time.Millisecond) // the others arrive while the first refreshes

			const agents, clients = 8, 200
			procs := make([]*agentProc, agents)
			env := journalEnv(t)
			var wg sync.WaitGroup
			for i := range agents {
				wg.Go(func() {
					procs[i] = startAgent(t, env, "--store", store, "serve", "--socket", filepath.Join(dir, fmt.Sprintf("a%d", i), "agent.sock"))
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			start := make(chan struct{})
			tokens := make([][]string, agents)
			for i, a := range procs {
				tokens[i] = make([]string, clients)
				for j := range clients {
					wg.Go(func() {
						<-start
						code, body := a.do(t, "GET", "/v1/token/default", "", nil)
						if code != 200 {
							t.Errorf("agent %d client %d: %d %s", i, j, code, body)
							return
						}
						tokens[i][j] = accessToken(t, body)
					})
				}
			}
			close(start)
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			first := tokens[0][0]
			for i := range tokens {
				for j, tok := range tokens[i] {
					if tok != first {
						t.Fatalf("agent %d client %d got another token", i, j)
					}
				}
			}
			st := p.Stats()
			if st.RefreshCalls != 1 || st.ReuseDetections != 0 {
				t.Errorf("%d x %d clients: %d refreshes, %d reuse detections; want 1 and 0", agents, clients, st.RefreshCalls, st.ReuseDetections)
			}
			if !p.Valid(first) {
				t.Error("the token is not valid at the server")
			}
			rec := loadRecord(t, store, "default")
			if rec.AccessToken.Reveal() != first || !p.ValidRefresh(rec.RefreshToken.Reveal()) || rec.Lease != nil {
				t.Error("the store does not hold the token and the current refresh token, lease cleared")
			}
			for i, a := range procs {
				if code := a.stop(t); code != 0 {
					t.Errorf("agent %d: exit %d; stderr: %s", i, code, a.stderr)
				}
			}
		})
	}
}

// TestServeRejectedReports: a resource server rejects the token (401);
// its clients, spread over 3 agents sharing the store, all report it. One
// refresh replaces it for everybody.
func TestServeRejectedReports(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := sqliteURL(filepath.Join(dir, "tokens.db"))
	p.initExpired(t, store, "default")
	env := journalEnv(t)
	var procs []*agentProc
	for i := range 3 {
		procs = append(procs, startAgent(t, env, "--store", store, "serve", "--socket", filepath.Join(dir, fmt.Sprintf("a%d", i), "agent.sock")))
	}
	var stale string
	for i, a := range procs {
		code, body := a.do(t, "GET", "/v1/token/default", "", nil)
		if code != 200 {
			t.Fatalf("agent %d: %d %s", i, code, body)
		}
		if tok := accessToken(t, body); stale == "" {
			stale = tok
		} else if tok != stale {
			t.Fatal("agents serve different tokens")
		}
	}
	p.Revoke(stale)
	p.ResetStats()
	p.SetLatency(50 * time.Millisecond)

	const reporters = 50
	got := make([][]string, len(procs))
	var wg sync.WaitGroup
	for i, a := range procs {
		got[i] = make([]string, reporters)
		for j := range reporters {
			wg.Go(func() {
				code, body := a.do(t, "POST", "/v1/token/default/rejected", stale, map[string]string{"Content-Type": "text/plain"})
				if code != 200 {
					t.Errorf("agent %d reporter %d: %d %s", i, j, code, body)
					return
				}
				got[i][j] = accessToken(t, body)
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	fresh := got[0][0]
	for i := range got {
		for _, tok := range got[i] {
			if tok != fresh || tok == stale {
				t.Fatalf("agent %d: reporters got different tokens, or the stale one", i)
			}
		}
	}
	if !p.Valid(fresh) {
		t.Error("the new token is not valid")
	}
	if st := p.Stats(); st.RefreshCalls != 1 || st.ReuseDetections != 0 {
		t.Errorf("%d reports over %d agents: %d refreshes, %d reuse detections; want 1 and 0",
			reporters*len(procs), len(procs), st.RefreshCalls, st.ReuseDetections)
	}
}

// TestServeBadInput: the agent answers bad requests with clear codes and
// stays up.
func TestServeBadInput(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := sqliteURL(filepath.Join(dir, "tokens.db"))
	p.initExpired(t, store, "default")
	const key = "k3y-0123456789abcdef-secret"
	a := startAgent(t, journalEnv(t), "--store", store, "serve", "--tcp", "127.0.0.1:0", "--key-file", writeKey(t, 0o600, key),
		"--allow", "*", "--read-header-timeout", "500ms")
	a.key = key
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown profile", "GET", "/v1/token/nosuch", "", 404},
		{"encoded slash in the path", "GET", "/v1/token/a%2Fb", "", 400},
		{"control character in the profile", "GET", "/v1/token/a%01b", "", 400},
		{"unknown endpoint", "GET", "/v1/secrets/default", "", 404},
		{"wrong method", "DELETE", "/v1/token/default", "", 405},
		{"oversized report", "POST", "/v1/token/default/rejected", strings.Repeat("x", 1<<20), 413},
		{"empty report", "POST", "/v1/token/default/rejected", "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := a.do(t, tc.method, tc.path, tc.body, nil); code != tc.want {
				t.Errorf("%d %s, want %d", code, body, tc.want)
			}
		})
	}
	t.Run("oversized header", func(t *testing.T) {
		// 431, or a reset that overtakes it (the rest of the header is
		// left unread): refused either way.
		req, _ := http.NewRequest("GET", a.base+"/v1/token/default", nil)
		req.Header.Set("Tokencache-Agent", "1")
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Pad", strings.Repeat("p", 64<<10))
		resp, err := a.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 431 {
				t.Errorf("%d, want 431", resp.StatusCode)
			}
		} else if !strings.Contains(err.Error(), "connection reset") {
			t.Error(err)
		}
	})
	t.Run("slow-loris", func(t *testing.T) {
		addr := strings.TrimPrefix(a.where, "tcp:")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/token/default HTTP/1.1\r\nHost: 127.0.0.1\r\nTokencache-Agent: 1\r\n")
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(c) // until the agent closes the connection
		if err != nil {
			t.Fatalf("connection not closed by the agent: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closed after %v, want about 500 ms", d)
		}
	})
	if code, body := a.do(t, "GET", "/v1/token/default", "", nil); code != 200 || !p.Valid(accessToken(t, body)) {
		t.Errorf("after bad input: %d %s", code, body)
	}
	if code := a.stop(t); code != 0 {
		t.Errorf("exit %d; stderr: %s", code, a.stderr)
	}
}

// TestServeSIGTERMDuringRefreshStoreDown: SIGTERM arrives while the agent
// refreshes and the store is down (locked by another writer past its busy
// timeout). The rotated refresh token goes to the recovery journal before
// the waiting client gets its access token; the agent exits non-zero
// naming the journal entry; the next process replays it: the grant is not
// lost (no reuse, no second refresh).
func TestServeSIGTERMDuringRefreshStoreDown(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "tokens.db")
	store := sqliteURL(dbPath)
	p.initExpired(t, store, "default")
	p.ResetStats()
	journal := filepath.Join(dir, "journal")
	env := []string{"TOKENCACHE_JOURNAL_DIR=" + journal}
	a := startAgent(t, env, "--store", store, "serve", "--socket", filepath.Join(dir, "run", "agent.sock"))

	hold := p.HoldRefreshes(oauthtest.BeforeRotate)
	type res struct {
		code int
		body string
	}
	got := make(chan res, 1)
	go func() {
		c, b := a.do(t, "GET", "/v1/token/default", "", nil)
		got <- res{c, b}
	}()
	select {
	case <-hold.Arrived():
	case <-time.After(30 * time.Second):
		t.Fatalf("no refresh reached the server; stderr: %s", a.stderr)
	}
	// The store goes down: another writer holds the database lock.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	hold.Release()

	r := <-got
	if r.code != 200 {
		t.Fatalf("the client waiting through shutdown: %d %s", r.code, r.body)
	}
	tok := accessToken(t, r.body)
	code := a.stop(t)
	stderr := a.stderr.String()
	if code == 0 || !strings.Contains(stderr, "recovery journal "+journal) {
		t.Fatalf("exit %d, stderr: %s; want non-zero naming the journal entry", code, stderr)
	}
	t.Logf("agent exit %d, stderr:\n%s", code, stderr)
	ents, err := filepath.Glob(filepath.Join(journal, "*.json")) // beside each entry may be its lock file
	if err != nil || len(ents) != 1 {
		t.Fatalf("journal holds %d entries (%v), want 1", len(ents), err)
	}
	conn.ExecContext(ctx, "ROLLBACK")
	conn.Close()

	// The store is back: the next process replays the journal and serves
	// the same token, with no refresh and no reuse.
	r2 := cli(t, env, "--store", store, "token").mustSucceed(t)
	if strings.TrimSpace(r2.stdout) != tok {
		t.Error("the next process printed another token than the one served before shutdown")
	}
	if st := p.Stats(); st.RefreshCalls != 1 || st.ReuseDetections != 0 {
		t.Errorf("%d refreshes, %d reuse detections; want 1 and 0", st.RefreshCalls, st.ReuseDetections)
	}
	rec := loadRecord(t, store, "default")
	if !p.ValidRefresh(rec.RefreshToken.Reveal()) || rec.AccessToken.Reveal() != tok {
		t.Error("the store does not hold the rotated refresh token after the replay")
	}
	if ents, _ := os.ReadDir(journal); len(ents) != 0 {
		t.Errorf("journal entry left after the replay: %d", len(ents))
	}
}

// TestServeClientDisconnectMidRefresh: the client whose request started
// the refresh hangs up while the token endpoint works; the refresh
// completes, the clients still waiting get its token, and the agent stays
// up.
func TestServeClientDisconnectMidRefresh(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := sqliteURL(filepath.Join(dir, "tokens.db"))
	p.initExpired(t, store, "default")
	p.ResetStats()
	a := startAgent(t, journalEnv(t), "--store", store, "serve", "--socket", filepath.Join(dir, "run", "agent.sock"))
	hold := p.HoldRefreshes(oauthtest.BeforeRotate)
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/v1/token/default", nil)
		req.Header.Set("Tokencache-Agent", "1")
		resp, err := a.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		left <- err
	}()
	<-hold.Arrived()
	type res struct {
		code int
		body string
	}
	waiting := make(chan res, 10)
	for range 10 {
		go func() {
			c, b := a.do(t, "GET", "/v1/token/default", "", nil)
			waiting <- res{c, b}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-left; err == nil {
		t.Fatal("the client that hung up got an answer")
	}
	time.Sleep(200 * time.Millisecond)
	hold.Release()
	var first string
	for range 10 {
		r := <-waiting
		if r.code != 200 {
			t.Fatalf("a waiting client: %d %s", r.code, r.body)
		}
		tok := accessToken(t, r.body)
		if first == "" {
			first = tok
		}
		if tok != first || !p.Valid(tok) {
			t.Fatal("waiting clients got different or invalid tokens")
		}
	}
	if st := p.Stats(); st.RefreshCalls != 1 || st.ReuseDetections != 0 {
		t.Errorf("%d refreshes, %d reuse detections; want 1 and 0", st.RefreshCalls, st.ReuseDetections)
	}
	if rec := loadRecord(t, store, "default"); rec.AccessToken.Reveal() != first || rec.Lease != nil {
		t.Error("the store does not hold the refreshed token with the lease cleared")
	}
	if code := a.stop(t); code != 0 {
		t.Errorf("exit %d; stderr: %s", code, a.stderr)
	}
}
