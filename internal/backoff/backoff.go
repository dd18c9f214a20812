// Package backoff holds the waiting primitives the library's retry loops
// share: a sleep that ends with its context, and jittered delays, so that
// many processes retrying the same thing spread out instead of colliding
// again in lock step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Sleep waits for d or until ctx ends, whichever is first, and returns
// ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Jitter returns a random duration in [0, d).
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// Around returns a random duration in [d/2, d): d with jitter, never much
// shorter than asked.
func Around(d time.Duration) time.Duration { return d/2 + Jitter(d-d/2) }

// Exponential returns base doubled attempt times (at most 64 x base), with
// jitter: the delay before retry number attempt+1.
func Exponential(base time.Duration, attempt int) time.Duration {
	return Around(base << min(max(attempt, 0), 6))
}
