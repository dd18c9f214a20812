package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// review12cRun initialises a profile whose token endpoint answers with
// handle, then runs `tokencache token` in process.
func review12cRun(t *testing.T, handle http.HandlerFunc) (stderr string, code int) {
	t.Helper()
	srv := httptest.NewServer(handle)
	defer srv.Close()
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	vars := map[string]string{"TOKENCACHE_STORE": store, "PAN_CLIENT_ID": "cid",
		"PAN_CLIENT_SECRET": "cs-0a1b2c3d4e5f", "PAN_REFRESH_TOKEN": "rt-9f8e7d6c5b4a"}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"init", "--token-url", srv.URL + "/token"}, testEnv(vars, &out, &errb)); code != 0 {
		t.Fatalf("init: %d %s", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"token", "--timeout", "5s"}, testEnv(vars, &out, &errb))
	return errb.String(), code
}

// README's exit codes: 8 is "invalid client (client_id/client_secret
// rejected)". A token endpoint that rejects the client's Basic credentials
// with a bare 401 and WWW-Authenticate (RFC 6749 §5.2 allows it; servlet
// containers and proxies that check Basic do it) exits 10, "the token URL
// does not answer as a token endpoint: check it", sending the user to the
// wrong fix.
func TestReview12cBare401ExitsInvalidClient(t *testing.T) {
	stderr, code := review12cRun(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	if code != exitBadClient {
		t.Errorf("token against a bare 401: exit %d (%s), want %d (invalid client)", code, strings.TrimSpace(stderr), exitBadClient)
	}
}

// A token endpoint that echoes what it was sent in error_description: the
// refresh token and client secret must not reach stderr.
func TestReview12cEchoedSecretsNotOnStderr(t *testing.T) {
	stderr, code := review12cRun(t, func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		_, pass, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request","error_description":"refresh_token ` + r.PostForm.Get("refresh_token") + ` unknown to client secret ` + pass + `"}`))
	})
	if code == 0 {
		t.Fatal("token succeeded")
	}
	for _, s := range []string{"rt-9f8e7d6c5b4a", "cs-0a1b2c3d4e5f"} {
		if strings.Contains(stderr, s) {
			t.Errorf("stderr carries a secret: %s", stderr)
		}
	}
}

// A custom login endpoint (init --scheme token_endpoint) that refuses the
// password with a bare 401: the command exits 10, "the token URL does not
// answer as a token endpoint: check it", for a wrong password.
func TestReview12cLoginBare401DoesNotExitNotEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="api"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"init", "--scheme", "token_endpoint", "--param", "url=" + srv.URL + "/login",
		"--param", "username=u", "--param", "password=wrong"}, testEnv(map[string]string{"TOKENCACHE_STORE": store}, &out, &errb))
	if code == exitNotEndpoint || code == 0 {
		t.Errorf("init against a login refusing the password with a bare 401: exit %d (%s); want a refused-credentials code, not %d",
			code, strings.TrimSpace(errb.String()), exitNotEndpoint)
	}
}
