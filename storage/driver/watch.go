package driver

import "context"

// KeyWatcher is an optional Adapter capability that a Store prefers to
// Watcher: one subscription to the backend (a pattern subscription, one
// directory watch, one poll loop) that reports changes to any number of
// keys. A Store holds at most one, however many profiles it waits on, and
// fans its reports out to its waiters; see the package's notes on the cost
// of waiting.
type KeyWatcher interface {
	// WatchKeys opens the subscription and returns once it is live; ctx
	// bounds the opening, not the subscription, which lasts until its
	// Close. From then on the adapter calls changed(key) when a key added
	// with Watch may have changed, and changed("") when any key may have
	// (a lost connection was re-established, events were dropped).
	// Spurious calls are allowed: waiters re-read. changed does not block;
	// it is not called once Close has returned.
	//
	// An error that matches errors.ErrUnsupported says the adapter cannot
	// watch in this configuration; the Store then uses Watcher, or polls.
	WatchKeys(ctx context.Context, changed func(key string)) (KeySubscription, error)
}

// KeySubscription is a live KeyWatcher subscription. Its methods are
// called by one Store, never concurrently with each other.
type KeySubscription interface {
	// Watch adds key, which its waiters last read at revision rev: every
	// change to key that lands after Watch returns calls changed(key).
	// Watch itself does no I/O (the Store re-reads the key after it).
	Watch(key string, rev Revision)
	// Unwatch removes key; a change to it may still be reported.
	Unwatch(key string)
	// Close ends the subscription and releases what it holds.
	Close() error
}
