package agent_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokencache/tokencache/oauthtest"
)

// A single local client that reports every token it is handed as rejected
// makes the agent refresh once per report: the report path has no floor on
// how often a profile may be refreshed, so one buggy or hostile client (or a
// resource server that rejects every token, e.g. wrong audience) turns the
// agent into a refresh-token-rotation loop against the token endpoint.
func TestReview2RejectedReportLoopRefreshesEveryTime(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: oauthtest.Options{Rotate: true}})
	code, body := f.do(t, "GET", "/v1/token/default", "", nil)
	if code != 200 {
		t.Fatalf("GET token: %d %s", code, body)
	}
	tok := decodeToken(t, body).AccessToken
	f.idp.ResetStats()
	const n = 20
	for i := range n {
		code, b := f.do(t, "POST", "/v1/token/default/rejected", tok, nil)
		if code != 200 {
			t.Fatalf("report %d: %d %s", i, code, b)
		}
		tok = decodeToken(t, b).AccessToken // the "new" token, reported again at once
	}
	if st := f.idp.Stats(); st.RefreshCalls > 2 {
		t.Errorf("%d back-to-back reports of freshly issued tokens made %d refreshes (want a floor: at most 1-2 within a few ms)", n, st.RefreshCalls)
	}
}

// The same missing floor in Credentials.Client (the README's recommended
// HTTP client): a resource server that refuses every token (wrong
// audience, clock skew, a misconfigured proxy) costs one refresh-token
// rotation per request, for as long as the program runs.
func TestReview2ClientRefreshesOnEvery401(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: oauthtest.Options{Rotate: true}})
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer rs.Close()
	c, err := f.profiles.Get("default")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := c.Client()
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.idp.ResetStats()
	const n = 20
	for range n {
		resp, err := cl.Get(rs.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if st := f.idp.Stats(); st.RefreshCalls > 2 {
		t.Errorf("%d requests to a resource server that always answers 401 made %d refreshes", n, st.RefreshCalls)
	}
}
