package httpauth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokencache/tokencache/httpauth"
)

// rotating hands out "t1", then after a renewal "t2", and so on.
type rotating struct {
	mu       sync.Mutex
	n        int
	renewals atomic.Int64
}

func (r *rotating) current() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "t" + string(rune('1'+r.n))
}

func (r *rotating) Authorize(_ context.Context, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+r.current())
	return nil
}

func (r *rotating) Renew(_ context.Context, refused *http.Request) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if refused.Header.Get("Authorization") != "Bearer t"+string(rune('1'+r.n)) {
		return true, nil
	}
	r.n++
	r.renewals.Add(1)
	return true, nil
}

func TestTransportRenewsOnceAndReplaysBody(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, r.Header.Get("Authorization")+" "+string(b))
		if r.Header.Get("Authorization") == "Bearer t1" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	a := &rotating{}
	resp, err := httpauth.Client(a).Post(srv.URL, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || a.renewals.Load() != 1 || len(bodies) != 2 || bodies[1] != "Bearer t2 payload" {
		t.Fatalf("status %d, %d renewals, requests %q", resp.StatusCode, a.renewals.Load(), bodies)
	}
}

func TestTransportKeepsCredentialOnItsOrigin(t *testing.T) {
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization") != "")
	}))
	defer other.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusFound)
	}))
	defer first.Close()
	resp, err := httpauth.Client(&rotating{}).Get(first.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if leaked.Load() {
		t.Fatal("the credential followed a redirect to another origin")
	}
	// Configured origins: only those.
	tr := &httpauth.Transport{Authorizer: &rotating{}, Origins: []string{other.URL}}
	resp, err = (&http.Client{Transport: tr}).Get(first.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !leaked.Load() {
		t.Fatal("a configured origin did not get the credential")
	}
}
