package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
)

// 9093e7c left a 403 without an OAuth code to the dialect because custom
// login endpoints refuse credentials with it. They refuse with a bare 401
// (WWW-Authenticate, empty or text body) at least as often, and that still
// comes out of DoEndpointRequest as ErrNotTokenEndpoint: the token_endpoint
// scheme's wrong password is then both ErrInvalidCredentials and "not a
// token endpoint", and the CLI, which tests ErrNotTokenEndpoint, exits 10
// ("check the token URL") for a wrong password.
func TestReview12cLoginRefusedWithBare401IsNotAWrongURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="api"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	a, err := auth.New("token_endpoint", auth.Params{"url": srv.URL + "/login", "username": "u", "password": "wrong-password"},
		auth.Env{Credentials: credentials.Config{JournalDir: "-"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.(interface{ Close() error }).Close()
	req, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
	err = a.Authorize(context.Background(), req)
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("a login refused with a bare 401: %v; want ErrInvalidCredentials", err)
	}
	if errors.Is(err, credentials.ErrNotTokenEndpoint) {
		t.Errorf("a login refused with a bare 401 also matches ErrNotTokenEndpoint: %v", err)
	}
}
