package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/oauthtest"
)

// TestInitFromEnvAndFileAndShowMasks: init takes secrets from PAN_* or a
// cred-init.json, never needing argv; show and list never print them.
func TestInitFromEnvAndFileAndShowMasks(t *testing.T) {
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	const (
		envSecret, envRefresh   = "env-client-secret-1", "env-refresh-token-1"
		fileSecret, fileRefresh = "file-client-secret-2", "file-refresh-token-2"
	)
	cli(t, []string{"PAN_CLIENT_ID=env-client", "PAN_CLIENT_SECRET=" + envSecret, "PAN_REFRESH_TOKEN=" + envRefresh},
		"--store", store, "init", "--token-url", "https://idp.example/oauth2/token").mustSucceed(t)

	credInit := filepath.Join(dir, "cred-init.json")
	os.WriteFile(credInit, []byte(`{"client_id": "file-client", "client_secret": "`+fileSecret+`", "refresh_token": "`+fileRefresh+`"}`), 0o600)
	// The flag wins over the file, the file over the environment.
	r := cli(t, []string{"PAN_CLIENT_ID=ignored", "PAN_CLIENT_SECRET=ignored"}, "--store", store, "--profile", "fromfile",
		"init", "--from-file", credInit, "--token-url", "https://idp.example/oauth2/token", "--client-id", "flag-client").mustSucceed(t)
	if !strings.Contains(r.stdout, `profile "fromfile" saved`) {
		t.Errorf("init said %q", r.stdout)
	}

	for _, c := range []struct{ profile, id, secret, refresh string }{
		{"default", "env-client", envSecret, envRefresh},
		{"fromfile", "flag-client", fileSecret, fileRefresh},
	} {
		rec := loadRecord(t, store, c.profile)
		if rec.ClientID != c.id || rec.ClientSecret.Reveal() != c.secret || rec.RefreshToken.Reveal() != c.refresh || rec.TokenURL == "" {
			t.Errorf("profile %s stored as client %q (secret and refresh token match: %v, %v)", c.profile, rec.ClientID,
				rec.ClientSecret.Reveal() == c.secret, rec.RefreshToken.Reveal() == c.refresh)
		}
	}

	secrets := []string{envSecret, envRefresh, fileSecret, fileRefresh}
	noSecrets := func(what, out string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s reveals a secret:\n%s", what, out)
			}
		}
	}
	show := cli(t, nil, "--store", store, "show").mustSucceed(t)
	noSecrets("show", show.stdout)
	for _, want := range []string{"client_id:", "env-client", "client_secret:", "*****", "refresh_token:", "access_token:", "(none)"} {
		if !strings.Contains(show.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, show.stdout)
		}
	}
	showJSON := cli(t, nil, "--store", store, "--profile", "fromfile", "show", "--json").mustSucceed(t)
	noSecrets("show --json", showJSON.stdout)
	var v map[string]any
	if err := json.Unmarshal([]byte(showJSON.stdout), &v); err != nil {
		t.Fatalf("show --json: %v\n%s", err, showJSON.stdout)
	}
	if v["client_secret"] != "*****" || v["refresh_token"] != "*****" || v["client_id"] != "flag-client" {
		t.Errorf("show --json = %v", v)
	}

	list := cli(t, nil, "--store", store, "list").mustSucceed(t)
	if list.stdout != "default\nfromfile\n" {
		t.Errorf("list = %q", list.stdout)
	}
	listJSON := cli(t, nil, "--store", store, "list", "--json").mustSucceed(t)
	noSecrets("list --json", listJSON.stdout)
	noSecrets("list -l", cli(t, nil, "--store", store, "list", "-l").mustSucceed(t).stdout)

	// Nothing to store is a usage error.
	if r := cli(t, nil, "--store", store, "init"); r.code != exitUsage {
		t.Errorf("init with nothing: exit %d, want %d", r.code, exitUsage)
	}
}

// TestCopyBetweenFileAndSQLite copies every profile, then one, and
// refuses to overwrite without --force.
func TestCopyBetweenFileAndSQLite(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	src := fileURL(filepath.Join(dir, "credentials.json"))
	dst := sqliteURL(filepath.Join(dir, "tokens.db"))
	p.initExpired(t, src, "a")
	p.initExpired(t, src, "b")

	r := cli(t, nil, "--store", src, "copy", "--to", dst).mustSucceed(t)
	if strings.Count(r.stdout, "copied") != 2 {
		t.Errorf("copy said %q", r.stdout)
	}
	if got := cli(t, nil, "--store", dst, "list").mustSucceed(t).stdout; got != "a\nb\n" {
		t.Errorf("list of the copy = %q", got)
	}
	for _, prof := range []string{"a", "b"} {
		s, d := loadRecord(t, src, prof), loadRecord(t, dst, prof)
		if s.ClientID != d.ClientID || s.ClientSecret != d.ClientSecret || s.RefreshToken != d.RefreshToken || s.TokenURL != d.TokenURL || !s.Expiry.Equal(d.Expiry) {
			t.Errorf("profile %s differs after the copy", prof)
		}
	}
	// The copy works on its own: it refreshes through the SQLite store.
	if tok := cli(t, nil, "--store", dst, "--profile", "a", "token").mustSucceed(t).stdout; !p.Valid(strings.TrimSpace(tok)) {
		t.Error("token from the copy is not valid")
	}

	// Existing profiles are not overwritten, and nothing is written.
	before, _ := os.ReadFile(filepath.Join(dir, "credentials.json"))
	if r := cli(t, nil, "--store", dst, "copy", "--to", src); r.code != exitConflict || !strings.Contains(r.stderr, "--force") {
		t.Errorf("copy onto existing profiles: exit %d, stderr %q", r.code, r.stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "credentials.json"))
	if string(before) != string(after) {
		t.Error("a refused copy changed the destination")
	}
	// One profile, replacing: the refreshed "a" goes back to the file store.
	cli(t, nil, "--store", dst, "--profile", "a", "copy", "--to", src, "--force").mustSucceed(t)
	if loadRecord(t, src, "a").AccessToken != loadRecord(t, dst, "a").AccessToken {
		t.Error("copy --force --profile a did not replace a")
	}
}

// TestLifecycle: token, forced refresh, revoke, rm.
func TestLifecycle(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	p.initExpired(t, store, "default")

	tok1 := strings.TrimSpace(cli(t, nil, "--store", store, "token").mustSucceed(t).stdout)
	p.ResetStats()
	r := cli(t, nil, "--store", store, "refresh").mustSucceed(t)
	if p.Stats().RefreshCalls != 1 || !strings.Contains(r.stdout, "refreshed") {
		t.Fatalf("refresh of a valid token made %d refresh calls; said %q", p.Stats().RefreshCalls, r.stdout)
	}
	tok2 := strings.TrimSpace(cli(t, nil, "--store", store, "token").mustSucceed(t).stdout)
	if tok2 == tok1 || !p.Valid(tok2) {
		t.Fatal("refresh did not store a new valid token")
	}

	// The revocation URL init remembered is used.
	cli(t, nil, "--store", store, "revoke").mustSucceed(t)
	if p.Valid(tok2) {
		t.Error("the access token is still valid after revoke")
	}
	if r := cli(t, nil, "--store", store, "token"); r.code != exitPartialCred {
		t.Errorf("token after revoke: exit %d (%s), want %d", r.code, r.stderr, exitPartialCred)
	}

	cli(t, nil, "--store", store, "rm").mustSucceed(t)
	if r := cli(t, nil, "--store", store, "show"); r.code != exitNotFound {
		t.Errorf("show after rm: exit %d, want %d", r.code, exitNotFound)
	}
	if r := cli(t, nil, "--store", store, "rm"); r.code != exitNotFound {
		t.Errorf("rm of a missing profile: exit %d, want %d", r.code, exitNotFound)
	}
}

// TestRepeatedInitKeepsRotatedToken: a container entrypoint that runs the
// same init on every start must not write the spent seed refresh token
// back over its rotated successor (issue 11, case 4), and init must not
// silently take another app's PAN_* values over a profile's grant.
func TestRepeatedInitKeepsRotatedToken(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	seed := p.IssueRefreshToken(p.clientID)
	env := []string{"PAN_CLIENT_ID=" + p.clientID, "PAN_CLIENT_SECRET=" + p.secret, "PAN_REFRESH_TOKEN=" + seed}
	initArgs := []string{"--store", store, "init", "--token-url", p.TokenURL()}
	cli(t, env, initArgs...).mustSucceed(t)
	cli(t, nil, "--store", store, "token").mustSucceed(t)

	again := cli(t, env, initArgs...).mustSucceed(t)
	if !strings.Contains(again.stdout, "kept the stored refresh token") {
		t.Errorf("second init said %q; want it to say it kept the rotated token", again.stdout)
	}
	rec := loadRecord(t, store, "default")
	if rec.RefreshToken.Reveal() == seed || !p.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Fatal("the same init again replaced the rotated refresh token with the spent seed")
	}
	cli(t, nil, "--store", store, "refresh").mustSucceed(t)
	if st := p.Stats(); st.RefreshCalls != 2 || st.ReuseDetections != 0 {
		t.Fatalf("%d refreshes, %d reuse detections; want 2 and 0", st.RefreshCalls, st.ReuseDetections)
	}

	// Another app's PAN_* in the environment: init --revoke-url must not
	// quietly replace client and grant.
	other := []string{"PAN_CLIENT_ID=other-app", "PAN_CLIENT_SECRET=x", "PAN_REFRESH_TOKEN=other-refresh"}
	if r := cli(t, other, "--store", store, "init", "--revoke-url", p.RevokeURL()); r.code != exitUsage || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("init over another client's grant: exit %d, stderr %q", r.code, r.stderr)
	}
	// A different refresh token for the same client: refused without
	// --force, a new grant with it.
	fresh := p.IssueRefreshToken(p.clientID)
	newEnv := []string{"PAN_REFRESH_TOKEN=" + fresh}
	if r := cli(t, newEnv, "--store", store, "init"); r.code != exitUsage {
		t.Fatalf("init with another refresh token without --force: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := loadRecord(t, store, "default").RefreshToken.Reveal(); !p.ValidRefresh(got) || got == fresh {
		t.Fatal("a refused init changed the refresh token")
	}
	cli(t, newEnv, "--store", store, "init", "--force").mustSucceed(t)
	if got := loadRecord(t, store, "default"); got.RefreshToken.Reveal() != fresh || got.AccessToken != "" {
		t.Fatal("init --force did not install the new grant")
	}
	cli(t, nil, "--store", store, "token").mustSucceed(t)
	if st := p.Stats(); st.ReuseDetections != 0 {
		t.Fatalf("%d reuse detections", st.ReuseDetections)
	}
}
