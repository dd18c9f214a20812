package auth_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
)

// Review of issue 12 ("one endpoint error type"): the same answer from a
// wrong URL or a broken server must be classified the same way whichever
// scheme asked. credentials' RFC 6749 path calls an HTML 404 "not a token
// endpoint" and a JSON body cut short "malformed, temporary"; the custom
// endpoint schemes (token_endpoint, tc_token, sl1's AuthToken) read answers
// with a copy of that code and must agree with it.
func TestReview12CustomEndpointClassifiesLikeTokenEndpoint(t *testing.T) {
	cases := []struct {
		name   string
		handle http.HandlerFunc
		want   error
		temp   bool
	}{
		{"html 404", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("<html><body>Not Found</body></html>"))
		}, credentials.ErrNotTokenEndpoint, false},
		{"json cut short", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "200")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"access_token":"abc`))
		}, credentials.ErrMalformedResponse, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRecorder(t, tc.handle)
			schemes := []struct {
				name   string
				params auth.Params
			}{
				{"oauth2_client_credentials", auth.Params{"token_url": srv.URL + "/token", "client_id": "app", "client_secret": "s3cret-value"}},
				{"token_endpoint", auth.Params{"url": srv.URL + "/login", "username": "bob", "password": "hunter2-value"}},
			}
			for _, s := range schemes {
				a, err := auth.New(s.name, s.params, auth.Env{Profile: s.name})
				if err != nil {
					t.Fatal(err)
				}
				closeAuth(t, a)
				_, err = a.(*auth.TokenAuthorizer).Token(t.Context())
				if !errors.Is(err, tc.want) {
					t.Errorf("%s: err = %v, want one that matches %v", s.name, err, tc.want)
				}
				var ee *credentials.EndpointError
				if !errors.As(err, &ee) {
					t.Errorf("%s: err = %v, want an *EndpointError in its chain", s.name, err)
					continue
				}
				if ee.Temporary() != tc.temp {
					t.Errorf("%s: Temporary() = %v, want %v (%v)", s.name, ee.Temporary(), tc.temp, err)
				}
				if ee.Response == nil {
					t.Errorf("%s: EndpointError.Response is nil: %v", s.name, err)
				}
			}
		})
	}
}

// A custom login endpoint that refuses the user's credentials with a 403
// is a refused login, not a wrong URL: the one classification of answers
// leaves a 403 without an OAuth error code to the dialect.
func TestReview12LoginRefusedWith403IsNotAWrongURL(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"message":"bad username or password"}`))
	})
	a, err := auth.New("token_endpoint", auth.Params{"url": srv.URL + "/login", "username": "bob", "password": "hunter2-value"}, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	_, err = a.(*auth.TokenAuthorizer).Token(t.Context())
	if !errors.Is(err, auth.ErrInvalidCredentials) || errors.Is(err, credentials.ErrNotTokenEndpoint) {
		t.Errorf("err = %v: want ErrInvalidCredentials and not ErrNotTokenEndpoint", err)
	}
}
