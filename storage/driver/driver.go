package driver

import "context"

// Revision identifies one version of a stored value. Adapters make them and
// only compare them; callers treat them as opaque. The empty Revision never
// names a stored version.
type Revision string

// Adapter is what a storage backend implements. Keys are profile names;
// values are JSON objects (a Store only writes encoded records), which lets
// a document store keep them readable. An adapter may normalise a value's
// whitespace and may add a "profile" member holding the key; everything else
// must read back as written.
//
// All methods must be safe for concurrent use, also across processes or
// machines where the backend is shared. Errors wrap the sentinels in this
// package (ErrNotFound, ErrConflict, ErrUnavailable, ...; see Wrap) so that
// callers can use errors.Is, and never contain a value.
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
// they reach, such as a file adapter's absolute path. storage.Open names
// the Store by it instead of the URL, so that two spellings of one store
// share a name and two stores never do (the credentials recovery journal
// relies on it).
type Namer interface {
	StoreName() string
}

// ConditionKind says what a Condition requires.
type ConditionKind uint8

const (
	// Unconditional makes a write unconditional. It is the zero value.
	Unconditional ConditionKind = iota
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
