package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/storage/driver"
)

// Wait implements driver.Watcher.
func (a *Adapter) Wait(ctx context.Context, key string, rev driver.Revision) error {
	if err := a.ready(ctx, "wait", key); err != nil {
		return err
	}
	if a.noListen {
		return driver.Wrap(driver.ErrUnavailable, opMsg("wait", key)+": listen=false, poll instead", errors.ErrUnsupported)
	}
	ch, unregister := a.lis.add(key, rev)
	defer unregister()
	if err := a.lis.listening(ctx, key); err != nil {
		return err
	}
	// Listening now: every commit from here on reaches ch. Whatever ch
	// holds already announced a commit that the read below sees.
	select {
	case <-ch:
	default:
	}
	_, cur, err := a.Get(ctx, key)
	if err != nil && !errors.Is(err, driver.ErrNotFound) {
		return err
	}
	if cur != rev {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-a.done:
		return driver.Wrap(driver.ErrClosed, opMsg("wait", key), nil)
	}
}

type listenState uint8

const (
	connecting listenState = iota
	up
	down
)

// listener owns the connection that LISTENs for an Adapter, outside the
// pool (a pooled connection would be handed to queries between waits), and
// hands notifications to the waiters of the key they name.
type listener struct {
	a *Adapter

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]driver.Revision // by key: each waiter's revision
	running bool
	state   listenState
	err     error         // why the last connection attempt failed, when down
	changed chan struct{} // closed and replaced on every change of state
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newListener(a *Adapter) *listener {
	return &listener{a: a, waiters: map[string]map[chan struct{}]driver.Revision{}, changed: make(chan struct{})}
}

// add registers a waiter for key at revision rev; the returned func
// removes it.
func (l *listener) add(key string, rev driver.Revision) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiters[key] == nil {
		l.waiters[key] = map[chan struct{}]driver.Revision{}
	}
	l.waiters[key][ch] = rev
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.waiters[key], ch)
		if len(l.waiters[key]) == 0 {
			delete(l.waiters, key)
		}
	}
}

// listening starts the listening connection if need be and returns once it
// listens. While it cannot connect, it returns an error that matches
// driver.ErrUnavailable and errors.ErrUnsupported, so that a Store polls
// meanwhile instead of spinning on Wait.
func (l *listener) listening(ctx context.Context, key string) error {
	l.mu.Lock()
	if !l.running {
		if l.a.closed.Load() {
			l.mu.Unlock()
			return driver.Wrap(driver.ErrClosed, opMsg("wait", key), nil)
		}
		l.running, l.state = true, connecting
		lctx, cancel := context.WithCancel(context.Background())
		l.cancel = cancel
		l.wg.Add(1)
		go l.run(lctx)
	}
	for {
		switch l.state {
		case up:
			l.mu.Unlock()
			return nil
		case down:
			err := l.err
			l.mu.Unlock()
			return driver.Wrap(driver.ErrUnavailable, opMsg("wait", key)+": cannot listen, poll instead",
				fmt.Errorf("%w: %w", errors.ErrUnsupported, err))
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.a.done:
			return driver.Wrap(driver.ErrClosed, opMsg("wait", key), nil)
		}
		l.mu.Lock()
	}
}

// set records a new state and wakes every waiter: after a reconnection,
// notifications sent while no connection listened are lost, so everyone
// re-reads.
func (l *listener) set(s listenState, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state, l.err = s, err
	close(l.changed)
	l.changed = make(chan struct{})
	for _, chs := range l.waiters {
		for ch := range chs {
			poke(ch)
		}
	}
}

// wake handles a notification's payload, "REV:KEY": it wakes the waiters
// of KEY that hold another revision than REV. Anything else ("" for a key
// too long for a payload, or a payload some other program sent on the
// channel) wakes everyone.
func (l *listener) wake(payload string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rev, key, ok := strings.Cut(payload, ":")
	if !ok {
		for _, chs := range l.waiters {
			for ch := range chs {
				poke(ch)
			}
		}
		return
	}
	for ch, held := range l.waiters[key] {
		if held != driver.Revision(rev) {
			poke(ch)
		}
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// reconnectBase is the first delay between connection attempts; it doubles
// up to 64 times that.
const reconnectBase = 100 * time.Millisecond

func (l *listener) run(ctx context.Context) {
	defer l.wg.Done()
	for attempt := 0; ctx.Err() == nil; {
		conn, err := l.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.set(down, l.a.fail(context.Background(), "listen", "", err))
			_ = backoff.Sleep(ctx, backoff.Exponential(reconnectBase, attempt))
			attempt++
			continue
		}
		attempt = 0
		l.set(up, nil)
		l.listen(ctx, conn)
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		// Lost: waiters re-read while the next connection is made, and
		// Waits that begin meanwhile wait for its outcome.
		l.set(connecting, nil)
	}
}

// listenPing is how long the listening connection may stay silent before
// it is pinged, and pingTimeout how long the ping may take. A connection
// whose peer vanished without closing it (a NAT or firewall that forgot
// it, a partition, a failover that moved the address) gives no error on
// its own for many minutes (TCP keep-alive): the ping notices within
// listenPing+pingTimeout, and the reconnection wakes every waiter to
// re-read, since notifications sent meanwhile are lost.
const (
	listenPing  = 5 * time.Second
	pingTimeout = 3 * time.Second
)

// listen hands conn's notifications to the waiters until conn fails, stops
// answering a ping, or ctx ends.
func (l *listener) listen(ctx context.Context, conn *pgx.Conn) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, listenPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			l.wake(n.Payload)
			continue
		case ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed():
			return
		}
		// Silent for listenPing: is anyone there?
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return
		}
	}
}

func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := l.a.pool.Config().ConnConfig
	// A deadline, not pgx's default cancel request, ends a wait that timed
	// out: the listening connection runs no query to cancel, and a timed
	// out wait leaves it usable.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{l.a.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// stop ends the listening connection and waits for its goroutine.
func (l *listener) stop() {
	l.mu.Lock()
	cancel := l.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	l.wg.Wait()
}
