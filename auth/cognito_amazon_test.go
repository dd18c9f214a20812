package auth_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/oauthtest"
)

// cognitoJSVersion is the amazon-cognito-identity-js release the
// interoperability test runs; scripts/test.sh installs the same one.
const cognitoJSVersion = "6.3.21"

// cognitoJSModules returns the node_modules directory holding Amazon's
// Cognito client, installing it with npm into the user's cache directory
// (where scripts/test.sh puts it) when it is not there yet.
func cognitoJSModules(t *testing.T) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "tokencache-servers", "amazon-cognito-identity-js-"+cognitoJSVersion)
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "amazon-cognito-identity-js", "package.json")); err == nil {
		return modules
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is needed to install amazon-cognito-identity-js (scripts/test.sh installs both):", err)
	}
	// Installed beside and renamed into place, so that a test running at
	// the same time never sees half an installation.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--loglevel=error",
		"amazon-cognito-identity-js@"+cognitoJSVersion).CombinedOutput()
	if err != nil {
		t.Fatalf("npm install amazon-cognito-identity-js@%s: %v\n%s", cognitoJSVersion, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, statErr := os.Stat(modules); statErr != nil { // not another test's install either
			t.Fatal(err)
		}
	}
	return modules
}

// jsLogin is one line of login.js's output.
type jsLogin struct {
	Username             string `json:"username"`
	OK                   bool   `json:"ok"`
	Step                 string `json:"step"`
	Code                 string `json:"code"`
	Message              string `json:"message"`
	AccessToken          string `json:"accessToken"`
	IDToken              string `json:"idToken"`
	RefreshToken         string `json:"refreshToken"`
	RefreshedAccessToken string `json:"refreshedAccessToken"`
}

// runCognitoJS logs cases in with amazon-cognito-identity-js, in node
// processes running side by side, and returns the results in order.
func runCognitoJS(t *testing.T, srv *oauthtest.CognitoServer, clientID string, cases []cognitoCase) []jsLogin {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is needed (scripts/test.sh installs it):", err)
	}
	modules := cognitoJSModules(t)
	const procs = 2
	results := make([][]jsLogin, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for i := range procs {
		part := cases[i*len(cases)/procs : (i+1)*len(cases)/procs]
		wg.Go(func() { results[i], errs[i] = runNode(t.Context(), node, modules, srv, clientID, part) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return slices.Concat(results...)
}

func runNode(ctx context.Context, node, modules string, srv *oauthtest.CognitoServer, clientID string, cases []cognitoCase) ([]jsLogin, error) {
	in, _ := json.Marshal(map[string]any{"endpoint": srv.URL, "poolId": srv.PoolID, "clientId": clientID, "cases": cases})
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "cognito-js", "login.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node login.js: %v\n%s", err, stderr.Bytes())
	}
	var results []jsLogin
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r jsLogin
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("login.js printed %q: %v", sc.Bytes(), err)
		}
		results = append(results, r)
	}
	if len(results) != len(cases) {
		return nil, fmt.Errorf("login.js answered %d of %d cases\n%s", len(results), len(cases), stderr.Bytes())
	}
	return results, nil
}

// TestCognitoSRPAmazonClient proves the test user pool, and with it our
// reading of Cognito's SRP, against a client we did not write: Amazon's
// amazon-cognito-identity-js logs 200 random users in (random names,
// passwords and salts, one in five with a wrong password) against the
// same pool our client logs in to, and renews some sessions with their
// refresh tokens. Both clients must succeed with the right password and
// fail with NotAuthorizedException with a wrong one. Every tenth login's
// u or S begins with a zero byte (CognitoOptions.ShortEvery), the case a
// wrong encoding of them fails.
func TestCognitoSRPAmazonClient(t *testing.T) {
	srv := oauthtest.NewCognitoServer(oauthtest.CognitoOptions{ShortEvery: 10})
	t.Cleanup(srv.Close)
	// Amazon's JavaScript client has no client secret: it is for public
	// app clients.
	srv.AddClient("web", "")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	cases := randomCognitoUsers(rand.New(rand.NewPCG(2, seed)), 200)
	jsCases := make([]cognitoCase, len(cases))
	for i, c := range cases {
		srv.AddUserSalt(c.Username, c.Password, c.salt)
		jsCases[i] = c
		if c.Wrong {
			jsCases[i].Password += "x"
		}
	}
	start := time.Now()
	results := runCognitoJS(t, srv, "web", jsCases)
	t.Logf("amazon-cognito-identity-js: %d logins in %v", len(cases), time.Since(start).Round(time.Millisecond))
	jsStats := srv.Stats()
	jsLogins := jsStats.Logins
	if jsStats.ShortU == 0 || jsStats.ShortS == 0 {
		t.Errorf("amazon-cognito-identity-js logins: %+v; want some with a short u and some with a short S", jsStats)
	}

	var wrong, refreshed int
	for i, c := range cases {
		r := results[i]
		switch {
		case r.Username != c.Username:
			t.Fatalf("result %d is for %q; want %q", i, r.Username, c.Username)
		case c.Wrong:
			wrong++
			if r.OK || r.Code != "NotAuthorizedException" {
				t.Errorf("js, wrong password for %q (salt %x): %+v; want NotAuthorizedException", c.Username, c.salt, r)
			}
		case !r.OK:
			t.Errorf("js, user %q (salt %x): %s failed: %s %s", c.Username, c.salt, r.Step, r.Code, r.Message)
		case !srv.Valid(r.AccessToken) || !srv.Valid(r.IDToken) || r.RefreshToken == "":
			t.Errorf("js, user %q: the session's tokens are not the pool's", c.Username)
		case c.Refresh:
			refreshed++
			if !srv.Valid(r.RefreshedAccessToken) || r.RefreshedAccessToken == r.AccessToken {
				t.Errorf("js, user %q: refreshSession did not yield a new valid token", c.Username)
			}
		}

		// Our client, against the same pool and user.
		passwd := c.Password
		if c.Wrong {
			passwd += "x"
		}
		tok, err := bearerOf(t, newCognito(t, cognitoParams(srv, "web", "", c.Username, passwd), auth.Env{}))
		switch {
		case c.Wrong && !errors.Is(err, auth.ErrInvalidCredentials):
			t.Errorf("go, wrong password for %q: %v; want ErrInvalidCredentials", c.Username, err)
		case !c.Wrong && (err != nil || !srv.Valid(tok)):
			t.Errorf("go, user %q (salt %x): %v", c.Username, c.salt, err)
		}
	}
	st := srv.Stats()
	t.Logf("%d users, %d wrong passwords, %d js refreshes; pool: %+v", len(cases), wrong, refreshed, st)
	if want := int64(len(cases) - wrong); jsLogins != want || st.Logins != 2*want || st.Refreshes != int64(refreshed) {
		t.Errorf("pool counted %d js logins, %d in all and %d refreshes; want %d, %d and %d", jsLogins, st.Logins, st.Refreshes, want, 2*want, refreshed)
	}
	if wrong == 0 || refreshed == 0 {
		t.Errorf("the cases had %d wrong passwords and %d refreshes; want some of each", wrong, refreshed)
	}
}
