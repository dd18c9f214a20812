package memcached

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tokencache/tokencache/storage/driver"
)

// The index is one item holding every profile name, newline-separated
// (names cannot contain control characters). It only ever changes through
// add (when missing) or cas on the version just read, so concurrent
// writers cannot overwrite each other's names.

func splitIndex(b []byte) []string {
	var names []string
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if len(line) > 0 {
			names = append(names, string(line))
		}
	}
	return names
}

func indexHas(b []byte, name string) bool {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if string(line) == name {
			return true
		}
	}
	return false
}

// indexAdd makes sure name is in the index. Callers have already written
// the profile, so that List never finds a name before its profile.
func (a *Adapter) indexAdd(ctx context.Context, name string) error {
	return a.indexUpdate(ctx, "index "+strconv.Quote(name), func(cur []byte, exists bool) ([]byte, bool) {
		if exists && indexHas(cur, name) {
			return nil, false
		}
		next := make([]byte, 0, len(cur)+len(name)+1)
		next = append(next, cur...)
		if len(next) > 0 {
			next = append(next, '\n')
		}
		return append(next, name...), true
	})
}

// indexRemove takes name out of the index after its profile was deleted,
// then re-reads the profile: a client that created it again in between may
// have seen the old entry and skipped adding it, so it goes back in.
func (a *Adapter) indexRemove(ctx context.Context, name string) error {
	err := a.indexUpdate(ctx, "unindex "+strconv.Quote(name), func(cur []byte, exists bool) ([]byte, bool) {
		if !exists || !indexHas(cur, name) {
			return nil, false
		}
		next := make([]byte, 0, len(cur))
		for _, n := range splitIndex(cur) {
			if n == name {
				continue
			}
			if len(next) > 0 {
				next = append(next, '\n')
			}
			next = append(next, n...)
		}
		return next, true
	})
	if err != nil {
		return err
	}
	if err := a.step(ctx, "unindex", name); err != nil {
		return err
	}
	it, err := a.c.Get(a.key(name))
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return nil
	case err != nil:
		return a.fail(ctx, "unindex", name, err)
	case it.Flags == flagTombstone:
		return nil
	}
	return a.indexAdd(ctx, name)
}

// indexUpdate applies change to the index in a cas loop; change returns
// the new contents, or false to leave the index as it is.
func (a *Adapter) indexUpdate(ctx context.Context, op string, change func(cur []byte, exists bool) ([]byte, bool)) error {
	for attempt := range maxCASRetries {
		if err := a.step(ctx, op, ""); err != nil {
			return err
		}
		it, err := a.c.Get(a.index)
		exists := err == nil
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			it = &memcache.Item{Key: a.index, Flags: flagIndex}
		case err != nil:
			return a.fail(ctx, op, "", err)
		case it.Flags != flagIndex:
			return driver.Wrap(driver.ErrCorrupt, "memcached: "+op+": the index item was not written by this adapter", nil)
		}
		next, write := change(it.Value, exists)
		if !write {
			return nil
		}
		it.Value = next
		if err := a.step(ctx, op, ""); err != nil {
			return err
		}
		if exists {
			err = a.c.CompareAndSwap(it)
		} else {
			err = a.c.Add(it)
		}
		if err == nil {
			return nil
		}
		if !lost(err) {
			return a.fail(ctx, op, "", err)
		}
		// Another writer changed the index: back off a little, with jitter,
		// once immediate retries have not helped.
		if attempt >= 2 {
			d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt-2, 5)))
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
	return driver.Wrap(driver.ErrUnavailable, "memcached: "+op+": the index stayed contended", nil)
}
