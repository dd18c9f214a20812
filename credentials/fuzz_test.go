package credentials

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseTokenResponse: whatever a token endpoint answers, parsing
// returns a response or an *EndpointError, never panics, and a response it
// accepts yields tokens or a typed error.
func FuzzParseTokenResponse(f *testing.F) {
	for _, seed := range []struct {
		status int
		ct     string
		body   string
	}{
		{200, "application/json", `{"access_token":"a","token_type":"Bearer","expires_in":3600,"refresh_token":"r"}`},
		{200, "application/json", `{"access_token":"a","expires_in":"3600"}`},
		{200, "application/x-www-form-urlencoded", `access_token=a&expires_in=60`},
		{400, "application/json", `{"error":"invalid_grant","error_description":"revoked"}`},
		{200, "application/json", `{"access_token":`},
		{502, "text/html", `<html>bad gateway</html>`},
		{200, "", ``},
		{200, "application/json", `{"expires_in":1e400}`},
	} {
		f.Add(seed.status, seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, ct string, body []byte) {
		tr, err := parseTokenResponse("http://x/token", status, ct, body)
		if err != nil {
			var ee *EndpointError
			if !errors.As(err, &ee) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			_ = ee.Error()
			return
		}
		got, err := tr.result(time.Now())
		if err != nil {
			var ee *EndpointError
			if !errors.As(err, &ee) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if got.AccessToken == "" {
			t.Fatal("accepted a response without an access token")
		}
	})
}

// FuzzJWTExpiry: no panic, and an accepted exp lies within years 1970-9999.
func FuzzJWTExpiry(f *testing.F) {
	for _, s := range []string{"eyJhbGciOiJub25lIn0.eyJleHAiOjE5MDAwMDAwMDB9.", "a.b.c", "...", "x", "a.eyJleHAiOi0xfQ.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		exp, ok := JWTExpiry(tok)
		if ok && (exp.Year() < 1970 || exp.Year() > 9999) {
			t.Fatalf("exp %v out of range", exp)
		}
		if !ok && !exp.IsZero() {
			t.Fatal("rejected token with a non-zero time")
		}
		if ok && !strings.Contains(tok, ".") {
			t.Fatal("accepted a token that is not a JWT")
		}
	})
}
