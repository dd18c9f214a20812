package storage

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/storage/driver"
)

// MaxKeyLen bounds profile names so that every backend can hold them.
const MaxKeyLen = 200

// Store is the portable, typed view of an Adapter that callers use. It is
// safe for concurrent use; its methods take the profile name as key.
type Store struct {
	adapter driver.Adapter
	name    string
	now     func() time.Time
	closed  atomic.Bool
	tel     atomic.Pointer[storeTelemetry] // made on first use; see Instrument
	watch   watchMux                       // one subscription for every waiter, over a driver.KeyWatcher
}

// NewStore returns a Store over a. The Store owns a: Close closes it.
func NewStore(a driver.Adapter) *Store { return &Store{adapter: a, now: time.Now} }

// NewNamedStore is NewStore for a store that outlives the process, with a
// name that identifies it to every process that uses it, such as its URL
// with the secrets left out. Credentials key their recovery journal by it;
// Open names the stores it opens.
func NewNamedStore(name string, a driver.Adapter) *Store {
	s := NewStore(a)
	s.name = name
	return s
}

// Name identifies the store across processes: the redacted URL it was
// opened with, or "" for a Store made by NewStore.
func (s *Store) Name() string { return s.name }

// Adapter returns the backend the Store wraps.
func (s *Store) Adapter() driver.Adapter { return s.adapter }

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
		return driver.Wrap(ErrInvalid, fmt.Sprintf("profile name %q", key), nil)
	}
	return nil
}

// Load returns the profile's record and its revision, or ErrNotFound.
func (s *Store) Load(ctx context.Context, profile string) (*Record, Revision, error) {
	if err := s.check(profile); err != nil {
		return nil, "", err
	}
	ctx, done := s.observe(ctx, opGet)
	b, rev, err := s.adapter.Get(ctx, profile)
	done(err)
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

// Replace writes next in place of cur, the record the caller loaded at
// revision rev (nil and "" when the profile was absent), and returns the
// new revision. It fails with ErrConflict when the profile changed since
// rev, and with ErrLineage when next's refresh token is neither cur's nor
// its successor nor a new grant (see Lineage). Most callers want Update;
// Replace is for those that must not re-read, such as a refresher that
// holds a lease on rev.
func (s *Store) Replace(ctx context.Context, cur *Record, rev Revision, next *Record) (Revision, error) {
	if err := s.check(next.Profile); err != nil {
		return "", err
	}
	if err := checkLineage(cur, next); err != nil {
		return "", err
	}
	cond := driver.IfMatch(rev)
	if cur == nil {
		cond = driver.IfAbsent()
	}
	return s.put(ctx, next, cond)
}

func (s *Store) put(ctx context.Context, r *Record, cond driver.Condition) (Revision, error) {
	r.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	b, err := EncodeRecord(r)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		// Never sent: certainly changed nothing. (A process stalled
		// between making the deadline and the call must not leave a
		// write that may have landed where none did.)
		return "", driver.NotApplied(err)
	}
	ctx, done := s.observe(ctx, opPut)
	rev, err := s.adapter.Put(ctx, r.Profile, b, cond)
	done(err)
	return rev, err
}

// Update applies fn to the profile's current record and writes the result
// conditioned on the revision it read, retrying from a fresh read when
// another writer got there first. A missing profile reaches fn as a new
// record with only Profile set. If fn returns an error nothing is written
// and Update returns that error. fn may run several times, so it must not
// have side effects beyond the record. A result that breaks the lineage
// rule (see Lineage) is not written: Update returns ErrLineage.
//
// Update never changes the record's Lease: it belongs to the refresh
// protocol, which writes it with Replace, so that no other writer can drop
// a lease a refresher holds and let a second refresher spend the token.
func (s *Store) Update(ctx context.Context, profile string, fn func(*Record) error) (*Record, Revision, error) {
	return s.update(ctx, profile, fn, true)
}

// UpdateLease is Update for the refresh protocol itself: fn may take,
// keep or clear the lease, which Update keeps out of every other writer's
// hands. Lineage applies as always.
func (s *Store) UpdateLease(ctx context.Context, profile string, fn func(*Record) error) (*Record, Revision, error) {
	return s.update(ctx, profile, fn, false)
}

func (s *Store) update(ctx context.Context, profile string, fn func(*Record) error, keepLease bool) (*Record, Revision, error) {
	if err := s.check(profile); err != nil {
		return nil, "", err
	}
	for attempt := 0; ; attempt++ {
		cur, rev, err := s.Load(ctx, profile)
		var r *Record
		switch {
		case errors.Is(err, ErrNotFound):
			cur, r = nil, &Record{Profile: profile}
		case err != nil:
			// Nothing was written: a conflict before this read changed
			// nothing either. Callers that track whether a write may have
			// landed (a held-back refresh token) must not count this one.
			return nil, "", driver.NotApplied(err)
		default:
			r = cur.Clone()
		}
		if err := fn(r); err != nil {
			return nil, "", err
		}
		r.Profile = profile
		if keepLease {
			r.Lease = nil
			if cur != nil {
				r.Lease = cur.Lease
			}
		}
		newRev, err := s.Replace(ctx, cur, rev, r)
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
	ctx, done := s.observe(ctx, opDelete)
	err := s.adapter.Delete(ctx, profile, driver.Condition{})
	done(err)
	return err
}

// List returns the profile names in the store, in no particular order.
func (s *Store) List(ctx context.Context) ([]string, error) {
	if s.closed.Load() {
		return nil, driver.Wrap(ErrClosed, "list", nil)
	}
	ctx, done := s.observe(ctx, opList)
	names, err := s.adapter.List(ctx)
	done(err)
	return names, err
}

// Wait blocks until the profile may have changed from revision rev, or ctx
// ends. Over an adapter that implements KeyWatcher every Wait of the Store
// shares one subscription; over a Watcher each Wait asks the adapter; for
// the others it polls every interval, with jitter so that waiters spread
// out. See the package's notes on the cost of waiting.
func (s *Store) Wait(ctx context.Context, profile string, rev Revision, interval time.Duration) (err error) {
	ctx, done := s.observe(ctx, opWait)
	defer func() { done(err) }()
	if kw, ok := s.adapter.(driver.KeyWatcher); ok {
		if err := s.watch.wait(ctx, s, kw, profile, rev, interval); !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	if w, ok := s.adapter.(driver.Watcher); ok {
		if err := w.Wait(ctx, profile, rev); !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	return backoff.Sleep(ctx, backoff.Around(interval))
}

// Close ends the Store's watch subscription, waking its waiters, and
// closes the adapter.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return errors.Join(s.watch.close(), s.adapter.Close())
}

func (s *Store) check(profile string) error {
	if s.closed.Load() {
		return driver.Wrap(ErrClosed, "store", nil)
	}
	return CheckKey(profile)
}
