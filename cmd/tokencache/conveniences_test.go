package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
)

// TestTokenFormats: token --format value|header|json|env|k8s print the same
// token, each as its consumer reads it.
func TestTokenFormats(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	p.initExpired(t, store, "default")
	tok := strings.TrimSpace(cli(t, nil, "--store", store, "token", "--format", "value").mustSucceed(t).stdout)
	if !p.Valid(tok) {
		t.Fatal("value: not a valid token")
	}
	exp := loadRecord(t, store, "default").Expiry.UTC()
	if exp.IsZero() {
		t.Fatal("no expiry stored")
	}

	if got := cli(t, nil, "--store", store, "token", "--format", "header").mustSucceed(t).stdout; got != "Authorization: Bearer "+tok+"\n" {
		t.Errorf("header: %q", got)
	}
	env := cli(t, nil, "--store", store, "token", "--format", "env").mustSucceed(t).stdout
	want := "TOKENCACHE_ACCESS_TOKEN='" + tok + "'\nTOKENCACHE_TOKEN_TYPE='Bearer'\nTOKENCACHE_TOKEN_EXPIRY='" + exp.Format(time.RFC3339) + "'\n"
	if env != want {
		t.Errorf("env:\n%s\nwant:\n%s", env, want)
	}
	var j tokenJSON
	if err := json.Unmarshal([]byte(cli(t, nil, "--store", store, "token", "--format", "json").mustSucceed(t).stdout), &j); err != nil ||
		j.AccessToken != tok || j.Expiry == nil || !j.Expiry.Equal(exp) || j.ExpiresIn == nil || *j.ExpiresIn <= 0 {
		t.Errorf("json: %+v %v", j, err)
	}
	var k execCredentialJSON
	if err := json.Unmarshal([]byte(cli(t, nil, "--store", store, "token", "--format", "k8s").mustSucceed(t).stdout), &k); err != nil {
		t.Fatal(err)
	}
	if k.APIVersion != "client.authentication.k8s.io/v1" || k.Kind != "ExecCredential" || k.Status.Token != tok ||
		k.Status.ExpirationTimestamp != exp.Format(time.RFC3339) {
		t.Errorf("k8s: %+v", k)
	}
	if r := cli(t, nil, "--store", store, "token", "--format", "yaml"); r.code != exitUsage {
		t.Errorf("--format yaml: exit %d", r.code)
	}
	if p.Stats().RefreshCalls != 1 {
		t.Errorf("%d refresh calls, want 1", p.Stats().RefreshCalls)
	}
}

// TestTokenMinValid: --min-valid refreshes a token that expires sooner.
func TestTokenMinValid(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true, AccessTTL: time.Hour})
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	rt := p.IssueRefreshToken(p.clientID)
	cli(t, []string{"PAN_CLIENT_ID=" + p.clientID, "PAN_CLIENT_SECRET=" + p.secret, "PAN_REFRESH_TOKEN=" + rt},
		"--store", store, "init", "--token-url", p.TokenURL(), "--access-token", "five-minutes-left", "--expires-in", "5m").mustSucceed(t)
	if got := strings.TrimSpace(cli(t, nil, "--store", store, "token").mustSucceed(t).stdout); got != "five-minutes-left" {
		t.Errorf("token: %q, want the stored one", got)
	}
	got := strings.TrimSpace(cli(t, nil, "--store", store, "token", "--min-valid", "10m").mustSucceed(t).stdout)
	if got == "five-minutes-left" || !p.Valid(got) || p.Stats().RefreshCalls != 1 {
		t.Errorf("token --min-valid 10m: %q, %d refresh calls", got, p.Stats().RefreshCalls)
	}
	// Longer than the server's tokens live: the fresh token, and a note.
	r := cli(t, nil, "--store", store, "token", "--min-valid", "2h").mustSucceed(t)
	if !p.Valid(strings.TrimSpace(r.stdout)) || !strings.Contains(r.stderr, "less than --min-valid 2h0m0s") {
		t.Errorf("token --min-valid 2h: %q, stderr %q", r.stdout, r.stderr)
	}
}

// TestExec: exec runs the command with the token in its environment and
// exits with its status.
func TestExec(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	p.initExpired(t, store, "work")
	r := cli(t, nil, "--store", store, "exec", "work", "--", "sh", "-c", `printf '%s %s' "$TOKENCACHE_TOKEN_TYPE" "$TOKENCACHE_ACCESS_TOKEN"; exit 3`)
	typ, tok, _ := strings.Cut(r.stdout, " ")
	if r.code != 3 || typ != "Bearer" || !p.Valid(tok) || r.stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, nil, "--store", store, "exec", "work"); r.code != exitUsage {
		t.Errorf("exec without a command: exit %d", r.code)
	}
	if r := cli(t, nil, "--store", store, "exec", "nosuch", "--", "true"); r.code != exitNotFound {
		t.Errorf("exec for a missing profile: exit %d: %s", r.code, r.stderr)
	}
}

// TestVersionAndCompletion: --version, the completion scripts and profile
// completion from the store.
func TestVersionAndCompletion(t *testing.T) {
	if r := cli(t, nil, "--version").mustSucceed(t); !strings.HasPrefix(r.stdout, "tokencache ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("--version: %q", r.stdout)
	}
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := cli(t, nil, "completion", sh).mustSucceed(t); !strings.Contains(r.stdout, "tokencache") {
			t.Errorf("completion %s: %q", sh, r.stdout)
		}
	}
	p := newIDP(t, oauthtest.Options{})
	store := fileURL(filepath.Join(t.TempDir(), "c.json"))
	p.initExpired(t, store, "alpha")
	p.initExpired(t, store, "beta")
	for _, args := range [][]string{{"token", ""}, {"-p", ""}, {"lease", "clear", ""}} {
		r := cli(t, nil, append([]string{"--store", store, "__complete"}, args...)...).mustSucceed(t)
		if !strings.Contains(r.stdout, "alpha\nbeta\n") {
			t.Errorf("completing %v: %q", args, r.stdout)
		}
	}
}
