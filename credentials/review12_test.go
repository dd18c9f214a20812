package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// Review of issue 12: "a 200 that is not a token response says so
// (content type, ...)". A JSON success answer without access_token is
// reported as ErrNotTokenEndpoint, and, like every other answer that is
// not a token response, the error names the endpoint that gave it, its
// content type and the response: without them the operator cannot tell
// which of several configured URLs is wrong.
func TestReview12SuccessWithoutTokenNamesEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	st := storage.NewStore(memory.New(nil))
	rec := &storage.Record{Profile: "p", ClientID: "cid", ClientSecret: "cs", TokenURL: srv.URL + "/token"}
	rec.Grant("rt")
	if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
		t.Fatal(err)
	}
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", RetryBackoff: 1, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	_, tokenErr := c.Token(context.Background())
	_, requestErr := credentials.RequestToken(context.Background(), nil, credentials.TokenRequest{TokenURL: srv.URL + "/token",
		ClientID: "cid", ClientSecret: "cs", Form: map[string][]string{"grant_type": {"client_credentials"}}})
	for name, err := range map[string]error{"Token": tokenErr, "RequestToken": requestErr} {
		var ee *credentials.EndpointError
		if !errors.As(err, &ee) || !errors.Is(err, credentials.ErrNotTokenEndpoint) {
			t.Errorf("%s: %v, want an *EndpointError matching ErrNotTokenEndpoint", name, err)
			continue
		}
		if ee.URL != srv.URL+"/token" || !strings.Contains(err.Error(), srv.URL+"/token") {
			t.Errorf("%s: URL %q, error %q: want the endpoint named", name, ee.URL, err)
		}
		if ee.StatusCode != http.StatusOK || ee.ContentType != "application/json" || ee.Response == nil {
			t.Errorf("%s: status %d, content type %q, response %v: want 200, application/json and the response", name, ee.StatusCode, ee.ContentType, ee.Response != nil)
		}
		if strings.Contains(err.Error(), "  ") {
			t.Errorf("%s: error text %q has an empty field", name, err)
		}
	}
}

// Review of issue 12: the CLI's exit code 10 ("the token URL does not
// answer as a token endpoint") took a 403, 404, 405 or 410 without an
// OAuth error code as a wrong URL whatever its content type, by a rule of
// its own, while the library (and so the agent, telemetry and every
// program) did not call an API gateway's JSON 404 ErrNotTokenEndpoint.
// One rule, the library's, so that library and CLI cannot disagree.
func TestReview12WrongURLOneRule(t *testing.T) {
	for _, tc := range []struct {
		status int
		ctype  string
		body   string
		want   bool
	}{
		{404, "application/json", `{"message":"Not Found"}`, true},
		{403, "application/json", `{"message":"Missing Authentication Token"}`, true},
		{405, "application/problem+json", `{"title":"Method Not Allowed"}`, true},
		{410, "application/json", `not json at all`, true},
		{404, "text/html", `<h1>Not Found</h1>`, true},
		{400, "application/json", `{"error":"invalid_grant"}`, false},
		{403, "application/json", `{"error":"access_denied"}`, false},
		{500, "application/json", `{"message":"oops"}`, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", tc.ctype)
			w.WriteHeader(tc.status)
			fmt.Fprint(w, tc.body)
		}))
		_, err := credentials.RequestToken(context.Background(), nil, credentials.TokenRequest{TokenURL: srv.URL + "/token",
			ClientID: "cid", ClientSecret: "cs", Form: map[string][]string{"grant_type": {"client_credentials"}}})
		srv.Close()
		var ee *credentials.EndpointError
		if !errors.As(err, &ee) {
			t.Errorf("%d %s: %v, want an *EndpointError", tc.status, tc.ctype, err)
			continue
		}
		if got := errors.Is(err, credentials.ErrNotTokenEndpoint); got != tc.want {
			t.Errorf("%d %s %s: matches ErrNotTokenEndpoint = %v, want %v (%v)", tc.status, tc.ctype, tc.body, got, tc.want, err)
		}
		if ee.Temporary() != (tc.status >= 500) {
			t.Errorf("%d %s: Temporary() = %v", tc.status, tc.ctype, ee.Temporary())
		}
	}
}
