package credentials_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// RFC 6749 §5.2: a server that refuses the client's HTTP Basic credentials
// "MAY return an HTTP 401 (Unauthorized) status code" with a
// WWW-Authenticate header. Many do so with no body at all, or a text one
// (a servlet container's default, a reverse proxy doing the Basic check).
// That is a refused client, not a URL that is not a token endpoint: the
// fix is the client secret, not the token URL. EndpointError.Is counts a
// 401 without an OAuth code as ErrInvalidClient only when it came with a
// JSON body; without one, parseTokenResponse's default branch has already
// set Err to ErrNotTokenEndpoint.
func TestReview12cBare401IsInvalidClient(t *testing.T) {
	for _, tc := range []struct{ name, ctype, body string }{
		{"empty body", "", ""},
		{"text body", "text/plain; charset=utf-8", "Unauthorized\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				}
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, err := credentials.RequestToken(context.Background(), srv.Client(), credentials.TokenRequest{
				TokenURL: srv.URL + "/token", ClientID: "cid", ClientSecret: "wrong-secret",
				Form: url.Values{"grant_type": {"client_credentials"}}})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, credentials.ErrInvalidClient) {
				t.Errorf("a 401 with WWW-Authenticate and %s: %v; want ErrInvalidClient", tc.name, err)
			}
			if errors.Is(err, credentials.ErrNotTokenEndpoint) {
				t.Errorf("a 401 with WWW-Authenticate is reported as not a token endpoint: %v", err)
			}
		})
	}
}

// A token endpoint that echoes the refresh token it was sent in its
// error_description: the package doc (SecretHolder) says errors mask the
// record's own secrets. The record's refresh token and client secret must
// not reach Token's error.
func TestReview12cRecordSecretsMaskedInEndpointError(t *testing.T) {
	const rt, cs = "rt-9f8e7d6c5b4a", "cs-0a1b2c3d4e5f"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		user, pass, _ := r.BasicAuth()
		got := r.PostForm.Get("refresh_token")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request","error_description":"refresh_token ` + got + ` not valid for ` + user + `:` + pass + `"}`))
	}))
	defer srv.Close()
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	rec := &storage.Record{Profile: "p", ClientID: "cid", ClientSecret: cs, TokenURL: srv.URL + "/token"}
	rec.Grant(rt)
	if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
		t.Fatal(err)
	}
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", MaxRetries: -1, JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Token(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{rt, cs} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("Token's error carries a record secret: %v", err)
		}
	}
	var ee *credentials.EndpointError
	if errors.As(err, &ee) && (strings.Contains(ee.Description, rt) || strings.Contains(ee.Description, cs)) {
		t.Errorf("EndpointError.Description carries a record secret: %q", ee.Description)
	}
}

// A 403 with Retry-After is a throttle (a WAF or API gateway's rate limit;
// GitHub answers its secondary rate limits so), not a URL that is not a
// token endpoint: since c46598e every 403 without an OAuth code is
// ErrNotTokenEndpoint, so it is neither retried nor paused for, and the
// Retry-After the server sent is dropped (RetryAfter is read for 429 and
// 503 only).
func TestReview12c403WithRetryAfterIsAThrottle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`))
	}))
	defer srv.Close()
	_, err := credentials.RequestToken(context.Background(), srv.Client(), credentials.TokenRequest{
		TokenURL: srv.URL + "/token", ClientID: "cid", ClientSecret: "s",
		Form: url.Values{"grant_type": {"client_credentials"}}})
	var ee *credentials.EndpointError
	if !errors.As(err, &ee) {
		t.Fatalf("err %v, want an *EndpointError", err)
	}
	if errors.Is(err, credentials.ErrNotTokenEndpoint) {
		t.Errorf("a 403 with Retry-After is reported as not a token endpoint: %v", err)
	}
	if ee.RetryAfter == 0 {
		t.Errorf("the server's Retry-After is dropped: %v", err)
	}
}
