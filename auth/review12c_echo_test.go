package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
)

// A token endpoint that echoes what it was sent in error_description:
// auth's errors promise secrets removed. The refresh token and client
// secret a scheme was configured with must not reach Authorize's error.
func TestReview12cSchemeErrorsMaskEchoedSecrets(t *testing.T) {
	const rt, cs, pw = "rt-9f8e7d6c5b4a", "cs-0a1b2c3d4e5f", "pw-77aa88bb99cc"
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		_, pass, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request","error_description":"got ` + r.PostForm.Get("refresh_token") + r.PostForm.Get("password") + ` with ` + pass + `"}`))
	}))
	defer idp.Close()
	for _, c := range []struct {
		scheme string
		params auth.Params
	}{
		{"oauth2_refresh_token", auth.Params{"token_url": idp.URL + "/token", "client_id": "cid", "client_secret": cs, "refresh_token": rt}},
		{"oauth2_password", auth.Params{"token_url": idp.URL + "/token", "client_id": "cid", "client_secret": cs, "username": "u", "password": pw}},
		{"oauth2_client_credentials", auth.Params{"token_url": idp.URL + "/token", "client_id": "cid", "client_secret": cs}},
	} {
		a, err := auth.New(c.scheme, c.params, auth.Env{Credentials: credentials.Config{MaxRetries: -1, JournalDir: "-"}})
		if err != nil {
			t.Fatalf("%s: %v", c.scheme, err)
		}
		req, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
		err = a.Authorize(context.Background(), req)
		if closer, ok := a.(interface{ Close() error }); ok {
			closer.Close()
		}
		if err == nil {
			t.Fatalf("%s: no error", c.scheme)
		}
		for _, s := range []string{rt, cs, pw} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: Authorize's error carries a secret: %v", c.scheme, err)
			}
		}
	}
}
