package auth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
)

func TestNone(t *testing.T) {
	srv := newRecorder(t, nil)
	a, err := auth.New("none", nil, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "GET", srv.URL)
	if r, _ := srv.last(t); len(r.Header.Values("Authorization")) != 0 {
		t.Errorf("none sent Authorization %q", r.Header.Get("Authorization"))
	}
}

func TestBasic(t *testing.T) {
	srv := newRecorder(t, nil)
	a, err := auth.New("basic", auth.Params{"username": "alice", "password": "s3cr:et é"}, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, "GET", srv.URL)
	r, _ := srv.last(t)
	u, p, ok := r.BasicAuth()
	if !ok || u != "alice" || p != "s3cr:et é" {
		t.Errorf("BasicAuth = %q, %q, %v", u, p, ok)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cr:et é")); r.Header.Get("Authorization") != want {
		t.Errorf("Authorization = %q, want %q", r.Header.Get("Authorization"), want)
	}
	_, err = auth.New("basic", auth.Params{"username": "a:b"}, auth.Env{})
	var oe *auth.OptionError
	if !errors.As(err, &oe) || oe.Option != "username" {
		t.Errorf("username with a colon: %v", err)
	}
}

func TestAPIKey(t *testing.T) {
	srv := newRecorder(t, nil)
	tests := []struct {
		name   string
		params auth.Params
		check  func(*http.Request) (string, string)
	}{
		{"default header", auth.Params{"key": "k1"},
			func(r *http.Request) (string, string) { return r.Header.Get("X-Api-Key"), "k1" }},
		{"header with prefix and suffix", auth.Params{"key": "k2", "header": "Authorization", "prefix": "ApiKey ", "suffix": "!"},
			func(r *http.Request) (string, string) { return r.Header.Get("Authorization"), "ApiKey k2!" }},
		{"query parameter", auth.Params{"key": "k 3&x", "query": "api_key"},
			func(r *http.Request) (string, string) { return r.URL.Query().Get("api_key"), "k 3&x" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.New("api_key", tt.params, auth.Env{})
			if err != nil {
				t.Fatal(err)
			}
			send(t, a, "GET", srv.URL+"/x?keep=1")
			r, _ := srv.last(t)
			if got, want := tt.check(r); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if r.URL.Query().Get("keep") != "1" {
				t.Errorf("existing query lost: %q", r.URL.RawQuery)
			}
		})
	}
	for _, bad := range []struct {
		p      auth.Params
		option string
	}{
		{auth.Params{}, "key"},
		{auth.Params{"key": "k", "header": "X-K", "query": "k"}, "query"},
		{auth.Params{"key": "k", "header": "Bad Header"}, "header"},
		{auth.Params{"key": 42}, "key"},
		{auth.Params{"key": "k", "hedaer": "X"}, "hedaer"},
	} {
		_, err := auth.New("api_key", bad.p, auth.Env{})
		var oe *auth.OptionError
		if !errors.As(err, &oe) || oe.Option != bad.option || oe.Scheme != "api_key" {
			t.Errorf("%v: err = %v, want an OptionError for %q", bad.p, err, bad.option)
		}
	}
}

func TestBearer(t *testing.T) {
	srv := newRecorder(t, nil)
	a, _ := auth.New("bearer", auth.Params{"token": "tok"}, auth.Env{})
	send(t, a, "GET", srv.URL)
	if r, _ := srv.last(t); r.Header.Get("Authorization") != "Bearer tok" {
		t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
	}
	a, _ = auth.New("bearer", auth.Params{"token": "tok", "header": "X-Token", "format": "Token {}"}, auth.Env{})
	send(t, a, "GET", srv.URL)
	if r, _ := srv.last(t); r.Header.Get("X-Token") != "Token tok" {
		t.Errorf("X-Token = %q", r.Header.Get("X-Token"))
	}
	ts, err := auth.TokenSource(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := ts.Token(); tok.AccessToken != "tok" || tok.TokenType != "Token" {
		t.Errorf("TokenSource = %+v", tok)
	}
	if _, err := auth.New("bearer", auth.Params{"token": "t", "format": "Bearer"}, auth.Env{}); err == nil {
		t.Error("a format without {} was accepted")
	}
	if _, err := auth.TokenSource(t.Context(), auth.None{}); !errors.Is(err, auth.ErrNoToken) {
		t.Errorf("TokenSource(None) = %v", err)
	}
}

// TestTCHMAC recomputes the signature the way a server would, from what
// arrived: the request line's path and query, the method and the Timestamp
// header.
func TestTCHMAC(t *testing.T) {
	const id, key = "12345678901234567890", "the-api-secret-key"
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		ts := r.Header.Get("Timestamp")
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(r.RequestURI + ":" + r.Method + ":" + ts))
		want := "TC " + id + ":" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if r.Header.Get("Authorization") != want {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	a, err := auth.New("tc_hmac", auth.Params{"api_access_id": id, "api_secret_key": key}, auth.Env{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v2/groups?resultLimit=10&owner=My%20Org"},
		{"POST", "/api/v2/indicators/addresses"},
		{"DELETE", "/api/v3/cases/7"},
	} {
		if code := send(t, a, tc.method, srv.URL+tc.path); code != 200 {
			t.Errorf("%s %s: server refused the signature (%d)", tc.method, tc.path, code)
		}
		r, _ := srv.last(t)
		if r.Header.Get("Timestamp") != strconv.FormatInt(clk.Now().Unix(), 10) {
			t.Errorf("Timestamp = %q", r.Header.Get("Timestamp"))
		}
		clk.Add(time.Second)
	}
	// A known answer, so that the test does not only agree with itself.
	req, _ := http.NewRequest("GET", "https://api.example.com/api/v2/owners?x=1", nil)
	h, _ := auth.NewTCHMAC(auth.TCHMACConfig{AccessID: "id", SecretKey: "key"}, auth.Env{Now: func() time.Time { return time.Unix(1500000000, 0) }})
	h.Authorize(t.Context(), req)
	mac := hmac.New(sha256.New, []byte("key"))
	mac.Write([]byte("/api/v2/owners?x=1:GET:1500000000"))
	if want := "TC id:" + base64.StdEncoding.EncodeToString(mac.Sum(nil)); req.Header.Get("Authorization") != want {
		t.Errorf("Authorization = %q, want %q", req.Header.Get("Authorization"), want)
	}
}
