package auth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/httpauth"
)

// recorder is an httptest server that keeps the requests it got and
// answers with handle.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func newRecorder(t *testing.T, handle http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 0, 512)
		if r.Body != nil {
			buf := make([]byte, 4096)
			for {
				n, err := r.Body.Read(buf)
				b = append(b, buf[:n]...)
				if err != nil {
					break
				}
			}
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.Clone(context.Background()))
		rec.body = append(rec.body, b)
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		if handle != nil {
			handle(w, r)
		}
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request reached the server")
	}
	return r.reqs[len(r.reqs)-1], r.body[len(r.body)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// send makes one request through an httpauth.Transport and returns its status.
func send(t *testing.T, a httpauth.Authorizer, method, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &httpauth.Transport{Authorizer: a}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func closeAuth(t *testing.T, a any) {
	if c, ok := a.(interface{ Close() error }); ok {
		t.Cleanup(func() { c.Close() })
	}
}

// clock is a settable clock for the schemes that keep time themselves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// authorized returns a request that a has authorized.
func authorized(t *testing.T, a httpauth.Authorizer) *http.Request {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://api.example/x", nil)
	if err := a.Authorize(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	return req
}

// isOptionError reports whether err is an *auth.OptionError for option.
func isOptionError(err error, option string) bool {
	var oe *auth.OptionError
	return errors.As(err, &oe) && oe.Option == option
}
