package dirwatch

import (
	"context"
	"sync"
	"time"

	"github.com/tokencache/tokencache/storage/driver"
)

// Revisions reads the current revisions of keys from the files, "" for a
// key that is absent. An error counts as a change to every key.
type Revisions func(ctx context.Context, keys []string) (map[string]driver.Revision, error)

// Keys is a driver.KeySubscription over a Watch: one goroutine that, on
// each change to the files, reads the revisions of the keys being watched
// and reports those that moved. However many waiters a Store has, the
// directory is watched once and each change costs one read per watched
// key, not one per waiter.
type Keys struct {
	w       *Watch
	read    Revisions
	settle  []time.Duration
	changed func(string)

	mu   sync.Mutex
	revs map[string]driver.Revision // watched keys, at the revision last seen

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// WatchKeys starts a Keys on w. After each change it reads again at each
// of the settle delays (counted from the change) unless another change
// comes first: for writers whose commit becomes visible only after the
// event that announces it (SQLite's WAL). The error is Changed's.
func (w *Watch) WatchKeys(read Revisions, settle []time.Duration, changed func(string)) (*Keys, error) {
	ch, err := w.Changed()
	if err != nil {
		return nil, err
	}
	k := &Keys{w: w, read: read, settle: settle, changed: changed,
		revs: map[string]driver.Revision{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	go k.run(ch)
	return k, nil
}

// Watch implements driver.KeySubscription.
func (k *Keys) Watch(key string, rev driver.Revision) {
	k.mu.Lock()
	k.revs[key] = rev
	k.mu.Unlock()
}

// Unwatch implements driver.KeySubscription.
func (k *Keys) Unwatch(key string) {
	k.mu.Lock()
	delete(k.revs, key)
	k.mu.Unlock()
}

// Close implements driver.KeySubscription; the Watch stays open.
func (k *Keys) Close() error {
	k.closeOnce.Do(func() { close(k.stop) })
	<-k.stopped
	return nil
}

// rewatch is how long run waits before watching again when the directory
// cannot be watched (it was removed, the inotify limits are reached).
const rewatch = time.Second

func (k *Keys) run(ch <-chan struct{}) {
	defer close(k.stopped)
	recheck := time.NewTimer(0)
	recheck.Stop()
	defer recheck.Stop()
	step := 0
	for {
		select {
		case <-ch:
			step = 0
			if len(k.settle) > 0 {
				recheck.Reset(k.settle[0])
			}
		case <-recheck.C:
			if step++; step < len(k.settle) {
				recheck.Reset(k.settle[step])
			}
		case <-k.stop:
			return
		}
		if k.w.isClosed() {
			k.changed("")
			return
		}
		// Take the next channel before reading, so that a change after the
		// read cannot be missed.
		next, err := k.w.Changed()
		for err != nil {
			k.changed("")
			select {
			case <-time.After(rewatch):
			case <-k.stop:
				return
			}
			next, err = k.w.Changed()
		}
		ch = next
		k.check()
	}
}

// check reads the watched keys' revisions and reports those that moved.
func (k *Keys) check() {
	k.mu.Lock()
	keys := make([]string, 0, len(k.revs))
	for key := range k.revs {
		keys = append(keys, key)
	}
	k.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	cur, err := k.read(context.Background(), keys)
	var moved []string
	k.mu.Lock()
	for _, key := range keys {
		was, ok := k.revs[key]
		if !ok {
			continue // unwatched meanwhile
		}
		if now := cur[key]; err != nil || now != was {
			k.revs[key] = now
			moved = append(moved, key)
		}
	}
	k.mu.Unlock()
	// Outside mu: changed takes the Store's lock, which Watch is called
	// under.
	for _, key := range moved {
		k.changed(key)
	}
}

func (w *Watch) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}
