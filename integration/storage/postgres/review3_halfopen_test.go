package postgres_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/postgres"
)

// blackholeProxy forwards TCP connections to target; freeze makes every
// connection open so far drop what it carries, both ways, without closing
// it, as a firewall that forgot the connection or a failed-over primary
// behind a moved address does. Later connections pass.
type blackholeProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	flags  []*atomic.Bool
}

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			frozen := new(atomic.Bool)
			p.mu.Lock()
			p.flags = append(p.flags, frozen)
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 && !frozen.Load() {
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						if !frozen.Load() {
							dst.Close()
						}
						return
					}
				}
			}
			go pipe(s, c)
			go pipe(c, s)
			t.Cleanup(func() { c.Close(); s.Close() })
		}
	}()
	return p
}

func (p *blackholeProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.flags {
		f.Store(true)
	}
}

// review3: the LISTEN connection has no liveness check. When it dies
// silently (no FIN or RST reaches the client: a NAT or firewall idle
// timeout, a partition, a failover that moves the address), the listener
// stays "up" in WaitForNotification, which nothing ever times out (pgx's
// dialer sets TCP keep-alive to 5 minutes, so the kernel notices after
// about 5 + 9x5 minutes), and every Wait sleeps until its own deadline: a
// write made meanwhile wakes nobody, and no reconnection pokes the
// waiters.
func TestReview3WaitOnSilentlyDeadListenConnection(t *testing.T) {
	direct := storeURL(t)
	u, _ := url.Parse(direct)
	proxy := newBlackholeProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	viaProxy := openURL(t, u.String())
	defer viaProxy.Close()
	writer := openURL(t, direct)
	defer writer.Close()
	ctx := context.Background()

	rev, err := writer.Put(ctx, "p", []byte(`{"v":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	// A first Wait brings the listening connection up.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := viaProxy.(driver.Watcher).Wait(wctx, "p", rev); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Wait: %v", err)
	}
	cancel()

	proxy.freeze() // the connections die silently; new ones would pass
	// Only the listener's is the point: the pool makes new ones.
	viaProxy.(*postgres.Adapter).Pool().Reset()
	woke := make(chan error, 1)
	start := time.Now()
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		woke <- viaProxy.(driver.Watcher).Wait(wctx, "p", rev)
	}()
	time.Sleep(time.Second)
	if _, err := writer.Put(ctx, "p", []byte(`{"v":2}`), driver.IfMatch(rev)); err != nil {
		t.Fatal(err)
	}
	err = <-woke
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait slept %v, to its deadline, through a write: the dead LISTEN connection was never noticed", time.Since(start).Round(time.Second))
	}
	t.Logf("Wait returned %v after %v", err, time.Since(start).Round(time.Millisecond))

	// The listener has reconnected (new connections pass the proxy): a
	// write now wakes a waiter as it commits, not at a ping or deadline.
	_, rev, err = viaProxy.Get(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		woke <- viaProxy.(driver.Watcher).Wait(wctx, "p", rev)
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-woke:
		t.Fatalf("Wait returned before the write: %v", err)
	default:
	}
	wrote := time.Now()
	if _, err := writer.Put(ctx, "p", []byte(`{"v":3}`), driver.IfMatch(rev)); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("Wait after the reconnection: %v", err)
	}
	if d := time.Since(wrote); d > 2*time.Second {
		t.Fatalf("Wait after the reconnection woke %v after the write: not by its notification", d.Round(time.Millisecond))
	}
}
