package redis_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
)

// cutProxy relays connections to a Redis server; once armed, it drops the
// reply to the next EVALSHA and closes that connection, as a server or
// network does when it fails after running the command.
type cutProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	cut    atomic.Bool
	// onCut, if set, runs after the script ran and before the client
	// learns its connection is gone (so before go-redis sends again).
	onCut atomic.Pointer[func()]
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		var sentEval atomic.Bool
		p.wg.Add(2)
		go func() { // client to server
			defer p.wg.Done()
			defer s.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if p.armed.Load() && bytes.Contains(bytes.ToUpper(buf[:n]), []byte("EVALSHA")) {
						sentEval.Store(true)
					}
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // server to client
			defer p.wg.Done()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if sentEval.Load() && p.armed.CompareAndSwap(true, false) {
						p.cut.Store(true)
						if fn := p.onCut.Load(); fn != nil {
							(*fn)()
						}
						s.Close()
						return // the reply is lost: the client reads EOF
					}
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// review 6: go-redis retries a command whose connection reached EOF or
// timed out after it was sent. A conditional put whose script ran, but
// whose reply was lost, is sent again; the retry finds the revision it
// was conditioned on gone (its own write replaced it) and answered
// ErrConflict, which promises that nothing changed. A caller holding a
// refresh token back then counts the write as not applied although other
// replicas may have read and spent the token it carried.
func TestReview6RetriedPutIsNotAConflict(t *testing.T) {
	u, err := url.Parse(withQuery(t, redisURL(t), "prefix", uniquePrefix(t)))
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	ctx := context.Background()
	a, err := driver.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// A first put loads the script, so the next one is a single EVALSHA.
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range []driver.Condition{driver.IfMatch(rev), driver.IfAbsent()} {
		if cond.Kind == driver.Absent {
			if err := a.Delete(ctx, "p", driver.Condition{}); err != nil {
				t.Fatal(err)
			}
		}
		p.armed.Store(true)
		got, err := a.Put(ctx, "p", []byte(`{"n":2}`), cond)
		if !p.cut.Swap(false) {
			t.Fatal("the proxy did not cut the put's reply")
		}
		_, stored, gerr := a.Get(ctx, "p")
		if gerr != nil {
			t.Fatal(gerr)
		}
		switch {
		case errors.Is(err, driver.ErrConflict) || errors.Is(err, driver.ErrNotApplied):
			t.Fatalf("put %v whose script ran: %v (the store holds revision %s)", cond, err, stored)
		case err == nil && got != stored:
			t.Fatalf("put %v: revision %s, the store holds %s", cond, got, stored)
		}
		rev = stored
	}
}
