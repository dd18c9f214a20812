// Package storage is tokencache's storage contract.
//
// A backend implements Adapter: opaque bytes under string keys, each version
// tagged with an opaque Revision the backend makes, and a conditional Put
// that is atomic in the backend itself. Store is the portable type callers
// use: it encodes Records, retries read-modify-write cycles on conflict and
// validates input. Backends register a URL scheme so that Open can pick one
// from configuration:
//
//	st, err := storage.Open(ctx, "sqlite:///var/lib/app/tokens.db")
//
// The split follows database/sql/driver: a tiny interface for the backend
// author, a concrete type with the conveniences for everyone else.
//
// Store also enforces the lineage rule on every write it makes: a stored
// refresh token is replaced only by its successor from the server (Rotate)
// or by an explicit new grant (Grant, or a Seed the profile has never held);
// anything else fails with ErrLineage and writes nothing. See Lineage.
//
// # The cost of waiting
//
// A process waits on the store (Store.Wait) while another one refreshes a
// profile, and a multi-tenant process may wait on many profiles at once.
// What a Wait costs depends on what the adapter can do, best first:
//
//   - KeyWatcher: the Store opens one subscription on first use and shares
//     it among all its waiters, whatever the number of profiles; each
//     Wait costs one read of its key (after joining, so that no change
//     slips between the caller's read and the wait) and no connection of
//     its own. Redis: one pattern subscription, which hears every write
//     under the prefix, one message each. File and SQLite: one directory
//     watch and one goroutine, which reads the watched keys' revisions
//     once per change (SQLite: one point query per watched key, repeated at
//     a few settle delays after each commit), however many wait on them.
//   - Watcher: each Wait subscribes on its own (Redis on a Cluster with
//     shard channels: a connection per Wait, to the key's shard).
//     PostgreSQL's Watcher already shares one LISTEN connection per
//     adapter among its waiters.
//   - Neither: each Wait polls at its interval, with jitter.
//
// Wrappers that forward Watcher but not KeyWatcher (storage/kms,
// fault-injecting test adapters) get the Watcher cost.
package storage

import "context"

// Revision identifies one version of a stored value. Adapters make them and
// only compare them; callers treat them as opaque. The empty Revision never
// names a stored version.
type Revision string

// Adapter is what a storage backend implements. Keys are profile names;
// values are JSON objects (Store only writes encoded Records), which lets a
// document store keep them readable. An adapter may normalise a value's
// whitespace and may add a "profile" member holding the key; everything else
// must read back as written.
//
// All methods must be safe for concurrent use, also across processes or
// machines where the backend is shared. Errors wrap the sentinels in this
// package (ErrNotFound, ErrConflict, ErrUnavailable, ...) so that callers
// can use errors.Is, and never contain a value.
type Adapter interface {
	// Get returns the current value and revision, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, Revision, error)

	// Put stores value when cond holds, atomically in the backend, and
	// returns the new revision. When cond does not hold it returns
	// ErrConflict and changes nothing: of any number of concurrent Puts
	// conditioned on the same revision, exactly one succeeds.
	Put(ctx context.Context, key string, value []byte, cond Condition) (Revision, error)

	// Delete removes key when cond holds; ErrConflict when it does not.
	// Deleting a missing key unconditionally is not an error.
	Delete(ctx context.Context, key string, cond Condition) error

	// List returns every key, in no particular order.
	List(ctx context.Context) ([]string, error)

	// Close releases the adapter's resources; later calls fail with ErrClosed.
	Close() error
}

// Watcher is an optional Adapter capability: adapters that can be told of
// changes (Redis pub/sub, change streams, an in-process map) implement it so
// that callers waiting for another process's refresh wake at once instead of
// polling.
type Watcher interface {
	// Wait returns nil once key's revision may differ from rev (spurious
	// wake-ups are allowed; callers re-read), or ctx's error. A wrapper
	// whose inner adapter cannot watch returns errors.ErrUnsupported, and
	// the Store polls instead.
	Wait(ctx context.Context, key string, rev Revision) error
}

// Namer is implemented by adapters that know a canonical name for the store
// they reach, such as a file adapter's absolute path. Open names the Store
// by it instead of the URL, so that two spellings of one store share a name
// and two stores never do (the credentials recovery journal relies on it).
type Namer interface {
	StoreName() string
}

// ConditionKind says what a Condition requires.
type ConditionKind uint8

const (
	// Any makes a write unconditional. It is the zero value.
	Any ConditionKind = iota
	// Absent requires that the key does not exist.
	Absent
	// Match requires the key's current revision to equal Condition.Revision.
	Match
)

// Condition guards a Put or Delete. The zero Condition is unconditional.
type Condition struct {
	Kind     ConditionKind
	Revision Revision // for Match
}

// IfAbsent is the condition "the key does not exist".
func IfAbsent() Condition { return Condition{Kind: Absent} }

// IfMatch is the condition "the key is at revision rev". IfMatch("") is
// IfAbsent, so a revision read from a missing key can be passed on as is.
func IfMatch(rev Revision) Condition {
	if rev == "" {
		return IfAbsent()
	}
	return Condition{Kind: Match, Revision: rev}
}

// Holds reports whether the condition is met by a key whose current
// revision is cur (empty when the key is absent). Adapters that compare in
// process, under their own lock, use it; others express the same rule in
// their backend's terms.
func (c Condition) Holds(cur Revision) bool {
	switch c.Kind {
	case Absent:
		return cur == ""
	case Match:
		return cur != "" && cur == c.Revision
	default:
		return true
	}
}

func (c Condition) String() string {
	switch c.Kind {
	case Absent:
		return "if absent"
	case Match:
		return "if revision " + string(c.Revision)
	default:
		return "unconditionally"
	}
}
