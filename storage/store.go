package storage

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tokencache/tokencache/internal/backoff"
)

// MaxKeyLen bounds profile names so that every backend can hold them.
const MaxKeyLen = 200

// Store is the portable, typed view of an Adapter that callers use. It is
// safe for concurrent use; its methods take the profile name as key.
type Store struct {
	adapter Adapter
	now     func() time.Time
	closed  atomic.Bool
}

// NewStore returns a Store over a. The Store owns a: Close closes it.
func NewStore(a Adapter) *Store { return &Store{adapter: a, now: time.Now} }

// Adapter returns the backend the Store wraps.
func (s *Store) Adapter() Adapter { return s.adapter }

// CheckKey reports whether key is a usable profile name: non-empty, valid
// UTF-8, no control characters, at most MaxKeyLen bytes.
func CheckKey(key string) error {
	bad := key == "" || len(key) > MaxKeyLen || !utf8.ValidString(key)
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			bad = true
		}
	}
	if bad {
		return Wrap(ErrInvalid, fmt.Sprintf("profile name %q", key), nil)
	}
	return nil
}

// Load returns the profile's record and its revision, or ErrNotFound.
func (s *Store) Load(ctx context.Context, profile string) (*Record, Revision, error) {
	if err := s.check(profile); err != nil {
		return nil, "", err
	}
	b, rev, err := s.adapter.Get(ctx, profile)
	if err != nil {
		return nil, "", err
	}
	r, err := DecodeRecord(b)
	if err != nil {
		return nil, "", fmt.Errorf("profile %q: %w", profile, err)
	}
	if r.Profile == "" {
		r.Profile = profile
	}
	return r, rev, nil
}

// Put writes r under its profile when cond holds and returns the new
// revision; ErrConflict when it does not. Most callers want Update.
func (s *Store) Put(ctx context.Context, r *Record, cond Condition) (Revision, error) {
	if err := s.check(r.Profile); err != nil {
		return "", err
	}
	r.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	b, err := EncodeRecord(r)
	if err != nil {
		return "", err
	}
	return s.adapter.Put(ctx, r.Profile, b, cond)
}

// ErrAbort may be returned by an Update function to stop without writing;
// Update then returns it (wrapped errors pass through unchanged too).
var ErrAbort = errors.New("storage: update aborted")

// Update applies fn to the profile's current record and writes the result
// conditioned on the revision it read, retrying from a fresh read when
// another writer got there first. A missing profile reaches fn as a new
// record with only Profile set. If fn returns an error nothing is written
// and Update returns that error. fn may run several times, so it must not
// have side effects beyond the record.
func (s *Store) Update(ctx context.Context, profile string, fn func(*Record) error) (*Record, Revision, error) {
	if err := s.check(profile); err != nil {
		return nil, "", err
	}
	for attempt := 0; ; attempt++ {
		r, rev, err := s.Load(ctx, profile)
		switch {
		case errors.Is(err, ErrNotFound):
			r, rev = &Record{Profile: profile}, ""
		case err != nil:
			return nil, "", err
		}
		if err := fn(r); err != nil {
			return nil, "", err
		}
		r.Profile = profile
		newRev, err := s.Put(ctx, r, IfMatch(rev))
		if err == nil {
			return r, newRev, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, "", err
		}
		// Contention: back off a little, with jitter, once the cheap
		// immediate retries have not helped, so N writers do not keep
		// colliding in lock step.
		if attempt >= 2 {
			if err := backoff.Sleep(ctx, backoff.Exponential(time.Millisecond, attempt-2)); err != nil {
				return nil, "", err
			}
		}
	}
}

// Delete removes the profile; deleting a missing profile is not an error.
func (s *Store) Delete(ctx context.Context, profile string) error {
	if err := s.check(profile); err != nil {
		return err
	}
	return s.adapter.Delete(ctx, profile, Condition{})
}

// List returns the profile names in the store, in no particular order.
func (s *Store) List(ctx context.Context) ([]string, error) {
	if s.closed.Load() {
		return nil, Wrap(ErrClosed, "list", nil)
	}
	return s.adapter.List(ctx)
}

// Wait blocks until the profile may have changed from revision rev, or ctx
// ends. Adapters that implement Watcher wake it on change; for the others it
// polls every interval, with jitter so that waiters spread out.
func (s *Store) Wait(ctx context.Context, profile string, rev Revision, interval time.Duration) error {
	if w, ok := s.adapter.(Watcher); ok {
		if err := w.Wait(ctx, profile, rev); !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	return backoff.Sleep(ctx, backoff.Around(interval))
}

// Close closes the adapter.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.adapter.Close()
}

func (s *Store) check(profile string) error {
	if s.closed.Load() {
		return Wrap(ErrClosed, "store", nil)
	}
	return CheckKey(profile)
}
