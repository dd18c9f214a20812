package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

func TestExitCodeClasses(t *testing.T) {
	endpoint := func(status int, code string) error {
		return &credentials.EndpointError{URL: "https://idp/token", StatusCode: status, Code: code}
	}
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitOther},
		{usagef("bad"), exitUsage},
		{fmt.Errorf("credentials: profile %q: %w", "p", driver.Wrap(storage.ErrNotFound, "get", nil)), exitNotFound},
		{driver.Wrap(storage.ErrCorrupt, "decode", errors.New("x")), exitCorrupt},
		{driver.Wrap(storage.ErrUnavailable, "dial", errors.New("refused")), exitStoreDown},
		{driver.Wrap(storage.ErrReadOnly, "write", nil), exitStoreDown},
		{driver.Wrap(storage.ErrInvalid, "url", nil), exitUsage},
		{endpoint(0, ""), exitTemporary},
		{endpoint(503, "temporarily_unavailable"), exitTemporary},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), exitTemporary},
		{fmt.Errorf("%w: profile %q: %w", credentials.ErrReauthRequired, "p", endpoint(400, "invalid_grant")), exitReauth},
		{endpoint(400, "invalid_grant"), exitReauth},
		{endpoint(401, "invalid_client"), exitBadClient},
		{endpoint(401, ""), exitBadClient},
		{fmt.Errorf("login: %w: %w", auth.ErrInvalidCredentials, endpoint(401, "")), exitReauth},
		{endpoint(400, "unsupported_grant_type"), exitOther},
		{&credentials.PartialCredentialsError{Profile: "p", Missing: []string{"refresh_token"}}, exitPartialCred},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestRunInProcess covers the command plumbing under the race detector:
// the black-box tests run a binary built without it.
func TestRunInProcess(t *testing.T) {
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	call := func(env map[string]string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, testEnv(env, &out, &errb))
		return out.String(), errb.String(), code
	}
	vars := map[string]string{"TOKENCACHE_STORE": store, "PAN_CLIENT_ID": "c", "PAN_CLIENT_SECRET": "hidden-secret", "PAN_REFRESH_TOKEN": "hidden-refresh"}
	if _, stderr, code := call(vars, "init", "--token-url", "http://127.0.0.1:1/token"); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	out, _, code := call(map[string]string{"TOKENCACHE_STORE": store}, "show")
	if code != 0 || strings.Contains(out, "hidden") || !strings.Contains(out, "*****") {
		t.Errorf("show: %d\n%s", code, out)
	}
	if _, _, code := call(map[string]string{"TOKENCACHE_STORE": store, "TOKENCACHE_PROFILE": "other"}, "show"); code != exitNotFound {
		t.Errorf("show of a missing profile by TOKENCACHE_PROFILE: exit %d", code)
	}
	if _, stderr, code := call(nil, "token", "profile", "extra-arg"); code != exitUsage || strings.Count(stderr, "\n") != 1 {
		t.Errorf("token with two arguments: exit %d, stderr %q", code, stderr)
	}
	if _, _, code := call(nil, "--store", store, "init", "--flavor", "bogus", "--client-id", "x"); code != exitUsage {
		t.Errorf("init --flavor bogus: exit %d", code)
	}
	if _, _, code := call(nil, "demo", "--ttl", "1500ms"); code != exitUsage {
		t.Errorf("demo --ttl 1500ms: exit %d", code)
	}
	if _, _, code := call(nil, "--store", "memory://x", "demo"); code != exitUsage {
		t.Errorf("demo on a memory store: exit %d", code)
	}
}

func testEnv(vars map[string]string, out, errb *bytes.Buffer) env {
	return env{stdin: strings.NewReader(""), stdout: out, stderr: errb, getenv: func(k string) string { return vars[k] }}
}
