package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
)

// Issue 17, findings 1 and 2 for the auth schemes: the password grant's
// token endpoint redirecting elsewhere does not get the password sent on,
// and a Transport does not authorize a request to another origin.
func TestAuthRedirectsKeepCredentials(t *testing.T) {
	var mu sync.Mutex
	var stolen []string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stolen = append(stolen, r.Header.Get("Authorization")+" "+r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"planted","expires_in":3600}`))
	}))
	defer evil.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()

	a, err := auth.New("oauth2_password", auth.Params{"token_url": redirector.URL + "/token", "client_id": "c",
		"client_secret": "cs", "username": "alice", "password": "hunter2"}, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	_, err = a.(*auth.TokenAuthorizer).Token(t.Context())
	var ee *credentials.EndpointError
	if !errors.As(err, &ee) || ee.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("password grant through a redirecting endpoint: %v", err)
	}
	mu.Lock()
	if len(stolen) != 0 {
		t.Fatalf("the redirect target received %q", stolen)
	}
	mu.Unlock()

	key, _ := auth.New("bearer", auth.Params{"token": "static-bearer-value"}, auth.Env{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/data", http.StatusFound)
	}))
	defer api.Close()
	send(t, key, "GET", api.URL)
	mu.Lock()
	defer mu.Unlock()
	if len(stolen) != 1 || strings.Contains(stolen[0], "static-bearer-value") {
		t.Fatalf("cross-origin redirect target got %q", stolen)
	}
}
