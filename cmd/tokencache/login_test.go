package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
)

// TestLoginAgainstOAuthtest drives "tokencache login" as a browser would:
// it opens the printed URL, oauthtest's authorize endpoint consents at once
// and redirects to the CLI's loopback listener, the CLI checks the state,
// exchanges the code with its PKCE verifier and stores the tokens.
func TestLoginAgainstOAuthtest(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--store", store, "login", "--no-browser",
		"--authorize-url", p.AuthorizeURL(), "--token-url", p.TokenURL(), "--client-id", p.clientID)
	cmd.Env = append(cleanEnv(), "PAN_CLIENT_SECRET="+p.secret)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var authURL string
	var printed strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		printed.WriteString(sc.Text() + "\n")
		if u := strings.TrimSpace(sc.Text()); strings.HasPrefix(u, p.AuthorizeURL()+"?") {
			authURL = u
			break
		}
	}
	if authURL == "" {
		cmd.Wait()
		t.Fatalf("login printed no authorization URL:\n%s", printed.String())
	}
	go io.Copy(io.Discard, stderr)
	for _, want := range []string{"code_challenge_method=S256", "state=", "redirect_uri=http%3A%2F%2F127.0.0.1%3A"} {
		if !strings.Contains(authURL, want) {
			t.Errorf("authorization URL lacks %s: %s", want, authURL)
		}
	}

	// The "browser": follows the redirect to the CLI's listener.
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "authorized") {
		t.Errorf("callback page: %d %s", resp.StatusCode, page)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("login: %v\n%s", err, printed.String())
	}
	if !strings.Contains(stdout.String(), `profile "default" authorized`) {
		t.Errorf("login said %q", stdout.String())
	}

	rec := loadRecord(t, store, "default")
	if !p.ValidRefresh(rec.RefreshToken.Reveal()) || !p.Valid(rec.AccessToken.Reveal()) || rec.ClientSecret.Reveal() != p.secret {
		t.Fatal("login did not store a valid grant with the client secret")
	}
	if extraString(rec, extraAuthorizeURL) != p.AuthorizeURL() {
		t.Error("login did not remember the authorization URL")
	}
	calls := p.Stats().TokenCalls
	tok := strings.TrimSpace(cli(t, nil, "--store", store, "token").mustSucceed(t).stdout)
	if tok != rec.AccessToken.Reveal() || p.Stats().TokenCalls != calls {
		t.Error("token after login did not print the stored token without a call")
	}
}

// TestLoginRejectsForeignState: redirects that do not carry the state of
// the request are refused and their codes never exchanged.
func TestLoginRejectsForeignState(t *testing.T) {
	p := newIDP(t, oauthtest.Options{})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--store", store, "login", "--no-browser",
		"--authorize-url", p.AuthorizeURL(), "--token-url", p.TokenURL(), "--client-id", p.clientID)
	cmd.Env = append(cleanEnv(), "PAN_CLIENT_SECRET="+p.secret)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var redirect string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), "Waiting for the redirect to "); ok {
			redirect = strings.TrimSuffix(after, " ...")
			break
		}
	}
	var rest bytes.Buffer
	go io.Copy(&rest, stderr)
	if redirect == "" {
		t.Fatal("no redirect URI printed")
	}
	// One stray redirect is tolerated (TestLoginToleratesOneStrayRedirect);
	// the second ends the login.
	for range 2 {
		resp, err := http.Get(redirect + "?code=stolen&state=forged")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("login with a forged state: %v", err)
	}
	if p.Stats().TokenCalls != 0 {
		t.Error("the forged code was exchanged")
	}
}
