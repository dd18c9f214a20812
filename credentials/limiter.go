package credentials

import (
	"context"
	"sync"
	"time"

	"github.com/tokencache/tokencache/internal/backoff"
)

// EndpointLimiter paces the refreshes a process sends to each token
// endpoint: at most MaxConcurrent at once, and none while the endpoint has
// asked for a pause (429 or 503 with Retry-After), so that many profiles on
// one endpoint do not hammer it together. Profiles shares one among its
// Credentials; give one to Config.Limiter to share it wider. Its zero value
// is ready to use.
type EndpointLimiter struct {
	// MaxConcurrent bounds concurrent refreshes per endpoint; default 4.
	MaxConcurrent int
	// MaxHoldOff caps how long a Retry-After holds an endpoint off;
	// default 5 minutes. Other replicas honour the pause, through the
	// parked refresh lease, for 10 minutes at most.
	MaxHoldOff time.Duration

	mu        sync.Mutex
	endpoints map[string]*endpointGate
}

type endpointGate struct {
	slots chan struct{}
	mu    sync.Mutex
	until time.Time // no refresh before this
}

func (l *EndpointLimiter) gate(endpoint string) *endpointGate {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.endpoints == nil {
		l.endpoints = map[string]*endpointGate{}
	}
	g := l.endpoints[endpoint]
	if g == nil {
		n := l.MaxConcurrent
		if n <= 0 {
			n = 4
		}
		g = &endpointGate{slots: make(chan struct{}, n)}
		l.endpoints[endpoint] = g
	}
	return g
}

// acquire waits out the endpoint's hold-off and for a free slot. waited
// says whether it had to wait, after which the caller should read the
// store again: another replica may have refreshed meanwhile. A nil
// limiter lets everything through.
func (l *EndpointLimiter) acquire(ctx context.Context, endpoint string, now func() time.Time) (release func(), waited bool, err error) {
	if l == nil {
		return func() {}, false, nil
	}
	g := l.gate(endpoint)
	if err := g.pause(ctx, now, &waited); err != nil {
		return nil, waited, err
	}
	select {
	case g.slots <- struct{}{}:
	default:
		waited = true
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, waited, ctx.Err()
		}
	}
	release = func() { <-g.slots }
	// A pause may have been asked for while we queued for the slot.
	if err := g.pause(ctx, now, &waited); err != nil {
		release()
		return nil, waited, err
	}
	return release, waited, nil
}

// wait sleeps out the endpoint's hold-off for a flight that already holds
// a slot (a retry after a 429 must not go out inside a longer pause that
// another answer asked for meanwhile).
func (l *EndpointLimiter) wait(ctx context.Context, endpoint string, now func() time.Time) (waited bool, err error) {
	if l == nil {
		return false, nil
	}
	err = l.gate(endpoint).pause(ctx, now, &waited)
	return waited, err
}

// pause sleeps out the endpoint's hold-off, if any, noting that it waited.
func (g *endpointGate) pause(ctx context.Context, now func() time.Time, waited *bool) error {
	for {
		g.mu.Lock()
		d := g.until.Sub(now())
		g.mu.Unlock()
		if d <= 0 {
			return nil
		}
		*waited = true
		if err := backoff.Sleep(ctx, d+backoff.Jitter(d/10+time.Millisecond)); err != nil {
			return err
		}
	}
}

// holdOff pauses every refresh to endpoint for d (capped at MaxHoldOff).
func (l *EndpointLimiter) holdOff(endpoint string, d time.Duration, now time.Time) {
	if l == nil || d <= 0 {
		return
	}
	d = min(d, l.maxHoldOff())
	g := l.gate(endpoint)
	g.mu.Lock()
	if until := now.Add(d); until.After(g.until) {
		g.until = until
	}
	g.mu.Unlock()
}

func (l *EndpointLimiter) maxHoldOff() time.Duration {
	if l == nil || l.MaxHoldOff <= 0 {
		return 5 * time.Minute
	}
	return l.MaxHoldOff
}
