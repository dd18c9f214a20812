package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// Tests of issue 17's CLI findings: secrets out of argv and out of child
// environments (7), no terminal injection (8), plain-http and plaintext
// warnings and redacted endpoint URLs (9), and endpoint URL validation.

// cliStdin is cli with stdin.
func cliStdin(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
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

// rawControls lists the control characters found in s: C0 (tab and, for
// multi-line output, newline excepted), DEL and C1.
func rawControls(s string) []rune {
	var bad []rune
	for _, r := range s {
		if (r < 0x20 && r != '\t' && r != '\n') || (r >= 0x7f && r <= 0x9f) {
			bad = append(bad, r)
		}
	}
	return bad
}

// TestInitSecretsFromFilesAndStdin: each secret init takes has a way in
// that is not argv: --client-secret-file from a file, --refresh-token-file
// and --access-token-file from a file or stdin ("-"). Before issue 17 these
// flags did not exist (exit 2, unknown flag).
func TestInitSecretsFromFilesAndStdin(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	secretFile := filepath.Join(dir, "client-secret")
	accessFile := filepath.Join(dir, "access-token")
	os.WriteFile(secretFile, []byte(p.secret+"\n"), 0o600)
	os.WriteFile(accessFile, []byte("file-access-token"), 0o600)
	rt := p.IssueRefreshToken(p.clientID)

	r := cliStdin(t, rt+"\n", nil, "--store", store, "init", "--token-url", p.TokenURL(), "--client-id", p.clientID,
		"--client-secret-file", secretFile, "--refresh-token-file", "-", "--access-token-file", accessFile, "--expires-in", "-1m")
	r.mustSucceed(t)
	rec := loadRecord(t, store, "default")
	if rec.ClientSecret.Reveal() != p.secret || rec.RefreshToken.Reveal() != rt || rec.AccessToken.Reveal() != "file-access-token" {
		t.Fatalf("stored client_secret/refresh_token/access_token are not the files' and stdin's (secret ok %v, refresh ok %v, access ok %v)",
			rec.ClientSecret.Reveal() == p.secret, rec.RefreshToken.Reveal() == rt, rec.AccessToken.Reveal() == "file-access-token")
	}
	for _, s := range []string{p.secret, rt} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Error("init printed a secret it read")
		}
	}
	// The profile works: the secrets were read exactly (no newline kept).
	cli(t, nil, "--store", store, "token").mustSucceed(t)

	// The client secret from stdin, on a profile of its own.
	cliStdin(t, p.secret, nil, "--store", store, "--profile", "p2", "init", "--token-url", p.TokenURL(),
		"--client-id", p.clientID, "--client-secret-file", "-").mustSucceed(t)
	if got := loadRecord(t, store, "p2").ClientSecret.Reveal(); got != p.secret {
		t.Error("--client-secret-file - did not store stdin")
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"stdin twice", []string{"--client-secret-file", "-", "--refresh-token-file", "-"}, "stdin"},
		{"flag and file", []string{"--client-secret", "x", "--client-secret-file", secretFile}, "client-secret"},
		{"missing file", []string{"--refresh-token-file", filepath.Join(dir, "nosuch")}, "--refresh-token-file"},
		{"two lines", []string{"--refresh-token-file", "-"}, "more than one line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cliStdin(t, "line-one-secret\nline-two-secret\n", nil,
				append([]string{"--store", store, "--profile", "p3", "init", "--token-url", p.TokenURL()}, tc.args...)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q: want exit %d mentioning %q", r.code, r.stderr, exitUsage, tc.want)
			}
			if strings.Contains(r.stderr, "line-one-secret") || strings.Contains(r.stderr, p.secret) {
				t.Errorf("stderr quotes a secret: %q", r.stderr)
			}
		})
	}
}

// TestCopyDestinationNotInArgv: copy takes the destination store URL from
// the variable --to-env names, or from TOKENCACHE_COPY_TO, so that a URL
// with a password never reaches argv. Before issue 17 --to was the only way
// (--to-env: unknown flag; TOKENCACHE_COPY_TO: "--to URL is required").
func TestCopyDestinationNotInArgv(t *testing.T) {
	p := newIDP(t, oauthtest.Options{})
	dir := t.TempDir()
	src := fileURL(filepath.Join(dir, "src.json"))
	p.initExpired(t, src, "app")

	dst1 := sqliteURL(filepath.Join(dir, "dst1.db"))
	r := cli(t, []string{"DEST_STORE=" + dst1}, "--store", src, "copy", "--to-env", "DEST_STORE").mustSucceed(t)
	if got := loadRecord(t, dst1, "app"); got.ClientSecret.Reveal() != p.secret {
		t.Error("copy --to-env did not copy the profile")
	}
	t.Logf("--to-env: %s", strings.TrimSpace(r.stdout))

	dst2 := sqliteURL(filepath.Join(dir, "dst2.db"))
	cli(t, []string{"TOKENCACHE_COPY_TO=" + dst2}, "--store", src, "copy").mustSucceed(t)
	if got := loadRecord(t, dst2, "app"); got.ClientSecret.Reveal() != p.secret {
		t.Error("copy with TOKENCACHE_COPY_TO did not copy the profile")
	}

	r = cli(t, nil, "--store", src, "copy", "--to-env", "NO_SUCH_VARIABLE")
	if r.code != exitUsage || !strings.Contains(r.stderr, "NO_SUCH_VARIABLE") {
		t.Errorf("--to-env of an unset variable: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestLoginOpenerGetsScrubbedEnvironment: the browser opener (here the
// program TOKENCACHE_BROWSER names, a script that records its environment
// and the URL it was given) runs without the CLI's secrets: no PAN_*
// variable, no TOKENCACHE_STORE, no other variable holding a store URL,
// while what a desktop session needs to show a page stays. Before issue 17
// the opener was always xdg-open, with the full environment.
func TestLoginOpenerGetsScrubbedEnvironment(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	envFile, urlFile := filepath.Join(dir, "opener-env"), filepath.Join(dir, "opener-url")
	opener := filepath.Join(dir, "opener.sh")
	script := "#!/bin/sh\nprintf '%s\\n' \"$1\" > " + urlFile + ".tmp && mv " + urlFile + ".tmp " + urlFile + "\n" +
		"env > " + envFile + ".tmp && mv " + envFile + ".tmp " + envFile + "\n"
	if err := os.WriteFile(opener, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"PAN_CLIENT_SECRET": p.secret,
		"PAN_REFRESH_TOKEN": "pan-refresh-token-secret",
		"TOKENCACHE_STORE":  store,
		"APP_REDIS_URL":     "redis://:redis-password-secret@cache:6379/0",
	}
	kept := map[string]string{"DISPLAY": ":42", "XDG_RUNTIME_DIR": dir, "LC_ALL": "C.UTF-8", "BROWSER": "true"}
	env := []string{"TOKENCACHE_BROWSER=" + opener}
	for k, v := range secrets {
		env = append(env, k+"="+v)
	}
	for k, v := range kept {
		env = append(env, k+"="+v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The store comes from TOKENCACHE_STORE, the secret from PAN_CLIENT_SECRET.
	cmd := exec.CommandContext(ctx, binary, "login",
		"--authorize-url", p.AuthorizeURL(), "--token-url", p.TokenURL(), "--client-id", p.clientID)
	cmd.Env = append(cleanEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	var openedURL, childEnv string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		u, uerr := os.ReadFile(urlFile)
		e, eerr := os.ReadFile(envFile)
		if uerr == nil && eerr == nil {
			openedURL, childEnv = strings.TrimSpace(string(u)), string(e)
			break
		}
	}
	if childEnv == "" {
		t.Fatalf("the opener named by TOKENCACHE_BROWSER never ran; login said:\n%s", stderr.String())
	}
	for k, v := range secrets {
		if strings.Contains(childEnv, k+"=") || strings.Contains(childEnv, v) {
			t.Errorf("the opener's environment has %s or its value", k)
		}
	}
	for _, kv := range strings.Split(childEnv, "\n") {
		if strings.HasPrefix(kv, "PAN_") || strings.HasPrefix(kv, "TOKENCACHE_") {
			t.Errorf("the opener's environment has %s", kv)
		}
	}
	for k, v := range kept {
		if !strings.Contains(childEnv, k+"="+v+"\n") {
			t.Errorf("the opener's environment lacks %s=%s", k, v)
		}
	}
	if !strings.Contains(childEnv, "PATH=") || !strings.Contains(childEnv, "HOME=") {
		t.Error("the opener's environment lacks PATH or HOME")
	}
	if !strings.HasPrefix(openedURL, p.AuthorizeURL()+"?") {
		t.Fatalf("the opener was given %q, not the authorization URL", openedURL)
	}
	// The "browser" follows the URL, so that login completes.
	resp, err := http.Get(openedURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("login: %v\n%s", err, stderr.String())
	}
	if rec := loadRecord(t, store, "default"); !p.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Error("login through the opener stored no valid grant")
	}
}

// hostileIDP is a token endpoint that answers every request with status
// and body: fault injection for what a hostile or broken server sends.
func hostileIDP(t *testing.T, status int, body string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/oauth2/token"
}

// TestServerTextEscapedOnTerminal: control characters a server sends
// (error and error_description of the token endpoint and of the login
// redirect) reach stderr escaped (\x1b), never raw: no colour change, no
// carriage return over the line, no bell or title. An access token with
// control characters is not printed at all. Before issue 17 ESC, BEL and
// C1 went to stderr raw.
func TestServerTextEscapedOnTerminal(t *testing.T) {
	t.Run("token endpoint error", func(t *testing.T) {
		body := `{"error":"invalid_request\u001b]0;owned\u0007","error_description":"\u001b[31mred\r\u009b2Jcleared"}`
		store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
		cli(t, []string{"PAN_CLIENT_ID=app", "PAN_CLIENT_SECRET=client-secret-value", "PAN_REFRESH_TOKEN=rt-value"},
			"--store", store, "init", "--token-url", hostileIDP(t, http.StatusBadRequest, body)).mustSucceed(t)
		r := cli(t, nil, "--store", store, "token")
		if r.code == 0 {
			t.Fatal("token succeeded against an endpoint that only answers errors")
		}
		if bad := rawControls(r.stderr); len(bad) > 0 {
			t.Errorf("stderr has raw control characters %q: %q", bad, r.stderr)
		}
		if !strings.Contains(r.stderr, `\x1b[31mred`) || !strings.Contains(r.stderr, `\x9b2J`) {
			t.Errorf("stderr does not show the escapes visibly: %q", r.stderr)
		}
		t.Logf("stderr: %s", r.stderr)
	})

	t.Run("access token with control characters", func(t *testing.T) {
		body := `{"access_token":"tok\u001b[2J","token_type":"Bearer","expires_in":3600}`
		store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
		cli(t, []string{"PAN_CLIENT_ID=app", "PAN_CLIENT_SECRET=client-secret-value", "PAN_REFRESH_TOKEN=rt-value"},
			"--store", store, "init", "--token-url", hostileIDP(t, http.StatusOK, body)).mustSucceed(t)
		r := cli(t, nil, "--store", store, "token")
		if r.code == 0 || r.stdout != "" || len(rawControls(r.stderr)) > 0 {
			t.Errorf("exit %d, stdout %q, stderr %q: want a failure, nothing on stdout", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("login redirect error", func(t *testing.T) {
		p := newIDP(t, oauthtest.Options{})
		store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, "--store", store, "login", "--no-browser",
			"--authorize-url", p.AuthorizeURL(), "--token-url", p.TokenURL(), "--client-id", p.clientID)
		cmd.Env = cleanEnv()
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var printed strings.Builder
		var redirect string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
			if _, after, ok := strings.Cut(sc.Text(), "Waiting for the redirect to "); ok {
				redirect = strings.TrimSuffix(after, " ...")
				break
			}
		}
		if redirect == "" {
			cmd.Wait()
			t.Fatalf("no redirect URI printed:\n%s", printed.String())
		}
		var rest bytes.Buffer
		done := make(chan struct{})
		go func() { io.Copy(&rest, stderr); close(done) }()
		resp, err := http.Get(redirect + "?error=access_denied%1B%5B2J&error_description=%1B%5B31mdenied%0D%07%C2%9B2J")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		<-done
		err = cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
			t.Fatalf("login after an error redirect: %v", err)
		}
		if bad := rawControls(rest.String()); len(bad) > 0 {
			t.Errorf("stderr has raw control characters %q: %q", bad, rest.String())
		}
		if !strings.Contains(rest.String(), `\x1b[31mdenied`) {
			t.Errorf("stderr does not show the escapes visibly: %q", rest.String())
		}
		t.Logf("stderr: %s", rest.String())
	})
}

// TestStoredFieldsEscapedInShowAndList: show and list print what a shared
// store holds with control characters escaped, in text and in JSON (where
// encoding/json leaves DEL and C1 raw). Before issue 17 they were printed
// raw.
func TestStoredFieldsEscapedInShowAndList(t *testing.T) {
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	st, err := storage.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"default", "evil\u009b2J"} {
		r := &storage.Record{
			Profile: name, ClientID: "app\x1b[2J", TokenURL: "https://idp.example/token\x1b]0;title\x07",
			TokenType: "Bearer\r\u0085", Scopes: []string{"read\x1b[8m", "write\x7f"}, AccessToken: "at",
			// Replace, not Update: Update keeps the stored lease.
			Lease: &storage.Lease{Owner: "host\x1b[1A", Until: time.Now().Add(time.Minute)},
		}
		if err := r.SetExtra(extraRevokeURL, "https://idp.example/revoke\x1b[31m"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Replace(context.Background(), nil, "", r); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	for _, args := range [][]string{{"show"}, {"show", "--json"}, {"list"}, {"list", "-l"}, {"list", "--json"}} {
		r := cli(t, nil, append([]string{"--store", store}, args...)...).mustSucceed(t)
		if bad := rawControls(r.stdout); len(bad) > 0 {
			t.Errorf("%v: stdout has raw control characters %q:\n%s", args, bad, r.stdout)
		}
		if strings.HasSuffix(args[len(args)-1], "json") {
			var v any
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
				t.Errorf("%v: not JSON: %v", args, err)
			}
		}
	}
	r := cli(t, nil, "--store", store, "show").mustSucceed(t)
	if !strings.Contains(r.stdout, `app\x1b[2J`) || !strings.Contains(r.stdout, `host\x1b[1A`) {
		t.Errorf("show does not show the escapes visibly:\n%s", r.stdout)
	}
	r = cli(t, nil, "--store", store, "list").mustSucceed(t)
	if !strings.Contains(r.stdout, `evil\x9b2J`) {
		t.Errorf("list does not show the escaped name:\n%s", r.stdout)
	}
}

// TestEndpointURLsRedacted: show, list -l and their --json print endpoint
// URLs with the userinfo password and secret query parameters masked, and
// an error quoting such a URL masks them too. Before issue 17 show and
// list printed them in full.
func TestEndpointURLsRedacted(t *testing.T) {
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	leaks := []string{"pw-hunter2", "zzz-query-secret", "authpw-secret", "revoke-query-secret"}
	cli(t, []string{"PAN_CLIENT_ID=app", "PAN_CLIENT_SECRET=client-secret-value", "PAN_REFRESH_TOKEN=rt-value"},
		"--store", store, "init",
		"--token-url", "https://user:pw-hunter2@idp.example/token?client_secret=zzz-query-secret",
		"--revoke-url", "https://idp.example/revoke?access_token=revoke-query-secret&x=1",
		"--authorize-url", "https://u:authpw-secret@idp.example/authorize").mustSucceed(t)
	for _, args := range [][]string{{"show"}, {"show", "--json"}, {"list", "-l"}, {"list", "--json"}} {
		r := cli(t, nil, append([]string{"--store", store}, args...)...).mustSucceed(t)
		for _, s := range leaks {
			if strings.Contains(r.stdout, s) {
				t.Errorf("%v prints %q:\n%s", args, s, r.stdout)
			}
		}
		if !strings.Contains(r.stdout, "idp.example/token") || !strings.Contains(r.stdout, "*****") {
			t.Errorf("%v does not show the redacted token URL:\n%s", args, r.stdout)
		}
	}

	// An error naming the endpoint: port 1 (tcpmux) has no listener (a
	// port just freed may be taken meanwhile by a parallel test's server).
	deadURL := "http://user:pw-hunter2@127.0.0.1:1/oauth2/token?client_secret=zzz-query-secret"
	cli(t, []string{"PAN_CLIENT_ID=app", "PAN_CLIENT_SECRET=client-secret-value", "PAN_REFRESH_TOKEN=rt-value"},
		"--store", store, "--profile", "dead", "init", "--token-url", deadURL).mustSucceed(t)
	r := cli(t, nil, "--store", store, "--profile", "dead", "--max-retries", "-1", "token")
	if r.code != exitTemporary {
		t.Errorf("token against a closed port: exit %d, want %d: %s", r.code, exitTemporary, r.stderr)
	}
	for _, s := range leaks {
		if strings.Contains(r.stderr, s) {
			t.Errorf("the error line quotes %q: %s", s, r.stderr)
		}
	}
}

// TestPlainHTTPAndPlaintextWarnings: init and login warn when an endpoint
// is plain http:// to a host that is not loopback, and copy warns when it
// takes secrets out of a kms+ store into a plain one. Loopback http and
// https endpoints, and kms+ to kms+, get no warning. Before issue 17 all
// were silent.
func TestPlainHTTPAndPlaintextWarnings(t *testing.T) {
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	env := []string{"PAN_CLIENT_ID=app", "PAN_CLIENT_SECRET=client-secret-value"}
	for _, tc := range []struct {
		flag, url string
		warn      bool
	}{
		{"--token-url", "http://idp.example/oauth2/token", true},
		{"--revoke-url", "http://10.1.2.3/oauth2/revoke", true},
		{"--authorize-url", "http://idp.example/oauth2/authorize", true},
		{"--token-url", "https://idp.example/oauth2/token", false},
		{"--token-url", "http://127.0.0.1:8080/oauth2/token", false},
		{"--token-url", "http://[::1]:8080/oauth2/token", false},
		{"--token-url", "http://localhost:8080/oauth2/token", false},
	} {
		r := cli(t, env, "--store", store, "init", tc.flag, tc.url).mustSucceed(t)
		if got := strings.Contains(r.stderr, "warning:") && strings.Contains(r.stderr, "plain http"); got != tc.warn {
			t.Errorf("init %s %s: warned %v, want %v; stderr %q", tc.flag, tc.url, got, tc.warn, r.stderr)
		}
	}

	// login warns about the stored http token URL before it waits.
	r := cli(t, env, "--store", store, "--timeout", "1s", "login", "--no-browser",
		"--authorize-url", "https://idp.example/oauth2/authorize", "--token-url", "http://idp.example/oauth2/token")
	if !strings.Contains(r.stderr, "warning:") || !strings.Contains(r.stderr, "http://idp.example/oauth2/token") {
		t.Errorf("login with an http token URL: no warning; stderr %q", r.stderr)
	}

	// An empty file store: copy's source must exist (read-only commands
	// never create a store).
	if err := os.WriteFile(filepath.Join(dir, "enc.json"), []byte(`{"profiles":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	kmsSrc := "kms+" + fileURL(filepath.Join(dir, "enc.json")) + "?kms_key_id=alias/test&kms_region=us-east-1&kms_endpoint=http://127.0.0.1:1"
	awsEnv := []string{"AWS_EC2_METADATA_DISABLED=true"}
	r = cli(t, awsEnv, "--store", kmsSrc, "copy", "--to", fileURL(filepath.Join(dir, "plain.json"))).mustSucceed(t)
	if !strings.Contains(r.stderr, "warning:") || !strings.Contains(r.stderr, "plaintext") {
		t.Errorf("copy from kms+ to file: no plaintext warning; stderr %q", r.stderr)
	}
	kmsDst := "kms+" + fileURL(filepath.Join(dir, "enc2.json")) + "?kms_key_id=alias/test&kms_region=us-east-1&kms_endpoint=http://127.0.0.1:1"
	r = cli(t, awsEnv, "--store", kmsSrc, "copy", "--to", kmsDst).mustSucceed(t)
	if strings.Contains(r.stderr, "warning:") {
		t.Errorf("copy from kms+ to kms+ warned: %q", r.stderr)
	}
}

// TestEndpointURLValidation: init, login and revoke refuse an endpoint URL
// that is not an absolute http(s) URL with a host, as a usage error (exit
// 2) that names the flag and quotes no part of the URL, and store nothing.
// Before issue 17 init stored any string.
func TestEndpointURLValidation(t *testing.T) {
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	env := []string{"PAN_CLIENT_ID=app", "PAN_CLIENT_SECRET=client-secret-value"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"init", "--token-url", "not a url"}, "--token-url"},
		{[]string{"init", "--token-url", "ftp://x/token"}, `scheme "ftp"`},
		{[]string{"init", "--token-url", "https:///token"}, "no host"},
		{[]string{"init", "--token-url", "https://user:pw-secret@idp.example/%zz"}, "--token-url"},
		{[]string{"init", "--token-url", "/relative/token"}, "not an absolute URL"},
		{[]string{"init", "--revoke-url", "mailto:pw-secret@x"}, "--revoke-url"},
		{[]string{"init", "--authorize-url", "idp.example/authorize"}, "--authorize-url"},
		{[]string{"login", "--no-browser", "--authorize-url", "https://idp.example/a", "--token-url", "ftp://pw-secret@x"}, "--token-url"},
		{[]string{"revoke", "--revoke-url", "gopher://x"}, "--revoke-url"},
	} {
		r := cli(t, env, append([]string{"--store", store}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q: want exit %d mentioning %q", tc.args, r.code, r.stderr, exitUsage, tc.want)
		}
		if strings.Contains(r.stderr, "pw-secret") || strings.Contains(r.stderr, "client-secret-value") {
			t.Errorf("%v: stderr quotes a secret: %q", tc.args, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "credentials.json")); err == nil {
		if r := cli(t, nil, "--store", store, "list"); strings.TrimSpace(r.stdout) != "" {
			t.Errorf("a refused init stored profiles: %q", r.stdout)
		}
	}
}
