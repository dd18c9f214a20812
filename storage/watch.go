package storage

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/storage/driver"
)

// subscribeRetry is how long a Store polls after a failed subscription
// before it tries to subscribe again, so that a store that is down is not
// asked for a subscription by every waiter.
const subscribeRetry = time.Second

// watchMux shares one KeySubscription among a Store's waiters.
type watchMux struct {
	// subscribing serializes attempts to subscribe, so that waiters wait
	// for one attempt rather than each open a subscription of their own.
	// It is not mu, which the subscription's callback takes.
	subscribing sync.Mutex
	failedAt    time.Time // when the last WatchKeys failed; under subscribing

	mu     sync.Mutex
	sub    driver.KeySubscription
	closed bool
	keys   map[string]map[chan struct{}]struct{} // each key's waiters
}

// wait is Store.Wait over a KeyWatcher. It returns errors.ErrUnsupported
// when there is no subscription to wait on; the Store then falls back.
func (m *watchMux) wait(ctx context.Context, s *Store, kw driver.KeyWatcher, key string, rev Revision, interval time.Duration) error {
	ch, err := m.add(ctx, kw, key, rev)
	if err != nil {
		return err
	}
	defer m.remove(key, ch)
	// Watching now: a write that lands after this read is sure to wake us.
	_, cur, err := s.adapter.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		cur = ""
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Let the caller's own read report it, after a pause: returning at
		// once would have it spin on a store that is down.
		return backoff.Sleep(ctx, backoff.Around(interval))
	}
	if cur != rev {
		return nil
	}
	select {
	case <-ch:
		if m.isClosed() {
			return driver.Wrap(ErrClosed, "wait", nil)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// add registers a waiter for key, subscribing first if need be.
func (m *watchMux) add(ctx context.Context, kw driver.KeyWatcher, key string, rev Revision) (chan struct{}, error) {
	if err := m.subscribe(ctx, kw); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, driver.Wrap(ErrClosed, "wait", nil)
	}
	ch := make(chan struct{}, 1)
	waiters := m.keys[key]
	if waiters == nil {
		waiters = map[chan struct{}]struct{}{}
		m.keys[key] = waiters
		m.sub.Watch(key, rev)
	}
	waiters[ch] = struct{}{}
	return ch, nil
}

// subscribe opens the shared subscription unless it is open.
func (m *watchMux) subscribe(ctx context.Context, kw driver.KeyWatcher) error {
	m.subscribing.Lock()
	defer m.subscribing.Unlock()
	m.mu.Lock()
	open, closed := m.sub != nil, m.closed
	m.mu.Unlock()
	switch {
	case closed:
		return driver.Wrap(ErrClosed, "wait", nil)
	case open:
		return nil
	case time.Since(m.failedAt) < subscribeRetry:
		return errors.ErrUnsupported
	}
	sub, err := kw.WatchKeys(ctx, m.changed)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.failedAt = time.Now()
		return errors.Join(errors.ErrUnsupported, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		// Store.Close ran meanwhile and found nothing to close.
		sub.Close()
		return driver.Wrap(ErrClosed, "wait", nil)
	}
	m.sub = sub
	m.keys = map[string]map[chan struct{}]struct{}{}
	return nil
}

func (m *watchMux) remove(key string, ch chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	waiters := m.keys[key]
	delete(waiters, ch)
	if len(waiters) == 0 && waiters != nil {
		delete(m.keys, key)
		if m.sub != nil {
			m.sub.Unwatch(key)
		}
	}
}

// changed is the subscription's callback: it wakes key's waiters, or
// everyone's for "".
func (m *watchMux) changed(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if key == "" {
		for _, waiters := range m.keys {
			wake(waiters)
		}
		return
	}
	wake(m.keys[key])
}

func wake(waiters map[chan struct{}]struct{}) {
	for ch := range waiters {
		select {
		case ch <- struct{}{}:
		default: // already woken
		}
	}
}

func (m *watchMux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// close ends the subscription and wakes every waiter, whose wait then
// returns ErrClosed.
func (m *watchMux) close() error {
	m.mu.Lock()
	m.closed = true
	sub := m.sub
	m.sub = nil
	for _, waiters := range m.keys {
		wake(waiters)
	}
	m.mu.Unlock()
	if sub == nil {
		return nil
	}
	// Outside mu: the subscription may be calling changed as it stops.
	return sub.Close()
}
