// Package memcached stores tokencache profiles in memcached through
// github.com/bradfitz/gomemcache.
//
// # Fit: a cache, not a store of record
//
// memcached evicts items when it runs short of memory, loses everything on
// restart, and remaps keys when its server list changes. A profile that
// disappears loses its rotated refresh token, and a refresh token that was
// rotated cannot be had again: the next refresh needs a re-authorization.
// Use this adapter for sharing access tokens between processes, with the
// refresh token also kept in a durable store, or run memcached with -M
// (return errors instead of evicting) and enough memory. When List finds
// that a profile it indexed has vanished it logs a warning through
// Options.Logger.
//
// # Layout and revisions
//
// A profile is one item under PREFIX + base64url(NAME), or, when that would
// pass memcached's 250-byte key limit, PREFIX + "~" + base64url(SHA-256 of
// NAME). Its value is a 16-byte random revision followed by the stored bytes.
//
// The revision is made by the client and kept in the item instead of being
// memcached's CAS id, for two reasons. The text protocol does not return
// the new CAS id from a store, so a revision that was the CAS id would need
// a second, racy read after every write. And CAS ids restart from 1 when
// memcached restarts, so a CAS id held across a restart can name a
// different item (ABA); random revisions cannot. The CAS id still does the
// atomic part: every conditional Put or Delete reads the item with gets,
// compares the stored revision with the condition's, and writes with cas on
// the CAS id that same gets returned, so the write lands only if nothing
// changed in between. A CAS id is never kept from one call to the next
// (an earlier version remembered the one from the last Get to save the
// gets, and after a restart a stale revision could win with it), so a
// conditional write costs two round trips. An absent condition is add.
//
// One window is left, inside a single call: if memcached restarts between
// the gets and the cas, and within that round trip the restarted server
// recreates the profile and counts up to the very CAS id that was read,
// the cas lands on the new item. Both must happen in well under a
// millisecond, and gomemcache sends the cas on the connection it idled
// last, usually the one the gets used, which dies with the old server.
//
// # Errors after the write
//
// An error does not prove that nothing was written: when a store's reply
// is lost (the client's Timeout, a connection cut after the command was
// sent) the call returns ErrUnavailable, yet memcached may have applied it.
// Callers treat such a write as possibly applied and re-read before
// deciding, as the refresh protocol's lineage rule does. ErrConflict
// always means that nothing changed.
//
// # Deletes: tombstones
//
// memcached's text protocol has no compare-and-delete. A conditional Delete
// therefore cas-swaps the item for a tombstone (a marker item that Get
// reports as not found and that expires by itself after an hour), which is
// atomic with the revision check; a plain delete after it could remove a
// profile someone created in the meantime, so there is none. Put if absent
// treats a tombstone as absent and replaces it with cas.
//
// # List: an index item
//
// memcached cannot enumerate keys, so the adapter keeps the names in one
// index item (PREFIX + "!index"), changed only with add and cas loops. A
// name is added after its profile is created and removed after the profile
// is deleted; the remover then re-reads the profile and puts the name back
// if someone created it meanwhile, so a concurrent create is never lost
// from the index. Should the index update fail after the profile write
// succeeded (the server went away between the two), the write still
// counts as done and a warning is logged; List may then miss a new
// profile until it is created again, or skip a deleted one until pruned. List reads the index, fetches the profiles in one
// get_multi, returns the live ones and prunes names whose profile is gone.
// If the index itself is evicted, List is incomplete until each profile is
// created again; the profiles themselves are unaffected.
//
// # Sizes
//
// The suite stores values up to 1 MiB, and memcached's default item limit
// (-I 1m) counts key and header too, so run memcached with -I 2m (or more)
// if values can approach 1 MiB; a value over the limit fails with
// driver.ErrInvalid. Real records are a few KiB. Splitting values over
// several items was not done: it would lose the single-item atomicity that
// cas gives, and each chunk could be evicted on its own. The index holds
// every name, so the item limit also bounds the number of profiles (about
// 5,000 names of the maximal 200 bytes per MiB).
//
// # Context
//
// gomemcache has no context support. The adapter checks ctx before every
// round trip, so a cancelled or expired ctx stops an operation between
// steps, and each round trip is bounded by the client's Timeout.
//
// # URL
//
// Importing the package registers the "memcached" scheme with storage.Open:
//
//	memcached://host:port[,host2:port2...]/[?prefix=tc:&timeout=500ms&max_idle_conns=16]
//
// Several servers share the keys by gomemcache's hashing; changing the list
// moves keys, which to this adapter looks like eviction. memcached has no
// authentication here, so a URL with user information is refused.
package memcached

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tokencache/tokencache/storage/driver"
)

// DefaultPrefix is put in front of every key when Options.Prefix is empty.
const DefaultPrefix = "tokencache:"

// Item flags mark what an item is, so that an item this adapter did not
// write is reported as corrupt instead of being misread. "tc" in the high
// half, a kind in the low.
const (
	flagLive      = 0x7463_0001
	flagTombstone = 0x7463_0002
	flagIndex     = 0x7463_0003
)

const (
	revLen        = 16
	tombstoneTTL  = 3600 // seconds; a tombstone only has to outlive races
	maxKeyLen     = 250  // memcached's limit
	maxPrefixLen  = 100
	indexSuffix   = "!index" // '!' is not in base64url, so no profile key can equal it
	hashedMarker  = "~"      // nor is '~'
	maxCASRetries = 64
)

// Options configure New. nil, and every zero field, mean the default.
type Options struct {
	// Prefix is put in front of every key; DefaultPrefix when empty. It
	// must be a legal memcached key part: no spaces or control characters,
	// at most 100 bytes.
	Prefix string
	// Logger receives warnings, such as a profile that was evicted. Nil
	// keeps the adapter silent.
	Logger *slog.Logger
}

// Adapter implements driver.Adapter over memcached.
type Adapter struct {
	c      *memcache.Client
	prefix string
	index  string
	log    *slog.Logger
	owned  bool

	closed atomic.Bool
}

// New returns an Adapter over client. The caller keeps ownership of
// client: Close stops the Adapter but does not close the client. nil opts
// means the defaults.
func New(client *memcache.Client, opts *Options) (*Adapter, error) {
	if client == nil {
		return nil, driver.Wrap(driver.ErrInvalid, "memcached: no client", nil)
	}
	if opts == nil {
		opts = &Options{}
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if len(prefix) > maxPrefixLen || strings.ContainsFunc(prefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("memcached: prefix %q: at most %d bytes, no spaces or control characters", prefix, maxPrefixLen), nil)
	}
	return &Adapter{c: client, prefix: prefix, index: prefix + indexSuffix, log: opts.Logger}, nil
}

// Client returns the gomemcache client the Adapter uses.
func (a *Adapter) Client() *memcache.Client { return a.c }

// key maps a profile name to its item key: base64url keeps any UTF-8 name
// within memcached's key alphabet, and a hash keeps long names within its
// length limit. List never decodes keys (names come from the index), so
// the hashed form costs nothing.
func (a *Adapter) key(name string) string {
	k := a.prefix + base64.RawURLEncoding.EncodeToString([]byte(name))
	if len(k) <= maxKeyLen {
		return k
	}
	sum := sha256.Sum256([]byte(name))
	return a.prefix + hashedMarker + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.step(ctx, "get", key); err != nil {
		return nil, "", err
	}
	it, err := a.c.Get(a.key(key))
	if err != nil {
		if errors.Is(err, memcache.ErrCacheMiss) {
			return nil, "", driver.Wrap(driver.ErrNotFound, "memcached: get "+strconv.Quote(key), nil)
		}
		return nil, "", a.fail(ctx, "get", key, err)
	}
	rev, value, live, err := decode(it)
	if err != nil {
		return nil, "", driver.Wrap(driver.ErrCorrupt, "memcached: get "+strconv.Quote(key), err)
	}
	if !live {
		return nil, "", driver.Wrap(driver.ErrNotFound, "memcached: get "+strconv.Quote(key), nil)
	}
	return value, rev, nil
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if strings.Contains(key, "\n") {
		// The index separates names with newlines.
		return "", driver.Wrap(driver.ErrInvalid, "memcached: put "+strconv.Quote(key)+": newline in name", nil)
	}
	rev, raw := encode(value)
	it := &memcache.Item{Key: a.key(key), Value: raw, Flags: flagLive}
	conflict := func() (driver.Revision, error) {
		return "", driver.Wrap(driver.ErrConflict, "memcached: put "+strconv.Quote(key)+" "+cond.String(), nil)
	}
	switch cond.Kind {
	case driver.Unconditional:
		if err := a.step(ctx, "put", key); err != nil {
			return "", err
		}
		if err := a.c.Set(it); err != nil {
			return "", a.fail(ctx, "put", key, err)
		}
	case driver.Absent:
		ok, err := a.create(ctx, key, it)
		if err != nil {
			return "", err
		}
		if !ok {
			return conflict()
		}
	case driver.Match:
		id, ok, err := a.casFor(ctx, key, cond.Revision)
		if err != nil {
			return "", err
		}
		if !ok {
			return conflict()
		}
		if err := a.step(ctx, "put", key); err != nil {
			return "", err
		}
		it.CasID = id
		if err := a.c.CompareAndSwap(it); err != nil {
			if lost(err) {
				return conflict()
			}
			return "", a.fail(ctx, "put", key, err)
		}
		// The profile existed, so it is indexed already.
		return rev, nil
	}
	a.indexed(ctx, "index", key, a.indexAdd(ctx, key))
	return rev, nil
}

// indexed reports a failed index update after the profile write itself
// succeeded. The write stands, so the caller is told of success: an error
// would make it retry a write that happened. Only List is affected, and
// List is already best effort under eviction.
func (a *Adapter) indexed(ctx context.Context, op, key string, err error) {
	if err != nil && a.log != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "memcached: profile written but the index not updated; List may be wrong about it",
			slog.String("op", op), slog.String("profile", key), slog.String("error", err.Error()))
	}
}

// create stores it if key is absent or a tombstone; false means a live
// profile is there.
func (a *Adapter) create(ctx context.Context, key string, it *memcache.Item) (bool, error) {
	for range maxCASRetries {
		if err := a.step(ctx, "put", key); err != nil {
			return false, err
		}
		err := a.c.Add(it)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, memcache.ErrNotStored) {
			return false, a.fail(ctx, "put", key, err)
		}
		// Something is there: a live profile, or a tombstone to replace.
		if err := a.step(ctx, "put", key); err != nil {
			return false, err
		}
		cur, err := a.c.Get(it.Key)
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			continue // gone since the add: add again
		case err != nil:
			return false, a.fail(ctx, "put", key, err)
		}
		if cur.Flags != flagTombstone {
			return false, nil
		}
		it.CasID = cur.CasID
		if err := a.step(ctx, "put", key); err != nil {
			return false, err
		}
		switch err := a.c.CompareAndSwap(it); {
		case err == nil:
			return true, nil
		case !lost(err):
			return false, a.fail(ctx, "put", key, err)
		}
	}
	return false, nil // churned throughout; a conflict is a fair answer
}

// casFor reads key's item and returns its CAS id if its revision is rev;
// ok is false when it is not (or the profile is missing). The CAS id is
// only good for the cas that follows at once: see "Layout and revisions".
func (a *Adapter) casFor(ctx context.Context, key string, rev driver.Revision) (id uint64, ok bool, err error) {
	if err := a.step(ctx, "put", key); err != nil {
		return 0, false, err
	}
	it, err := a.c.Get(a.key(key))
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return 0, false, nil
	case err != nil:
		return 0, false, a.fail(ctx, "put", key, err)
	}
	cur, _, live, err := decode(it)
	if err != nil {
		return 0, false, driver.Wrap(driver.ErrCorrupt, "memcached: put "+strconv.Quote(key), err)
	}
	return it.CasID, live && cur == rev, nil
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	tomb := &memcache.Item{Key: a.key(key), Flags: flagTombstone, Expiration: tombstoneTTL}
	conflict := driver.Wrap(driver.ErrConflict, "memcached: delete "+strconv.Quote(key)+" "+cond.String(), nil)
	switch cond.Kind {
	case driver.Unconditional:
		// A tombstone rather than delete, so that List can tell a deleted
		// profile from an evicted one.
		if err := a.step(ctx, "delete", key); err != nil {
			return err
		}
		if err := a.c.Set(tomb); err != nil {
			return a.fail(ctx, "delete", key, err)
		}
	case driver.Absent:
		// Holds only if there is nothing to delete.
		if err := a.step(ctx, "delete", key); err != nil {
			return err
		}
		it, err := a.c.Get(tomb.Key)
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			return nil
		case err != nil:
			return a.fail(ctx, "delete", key, err)
		}
		if it.Flags != flagTombstone {
			return conflict
		}
		return nil
	case driver.Match:
		id, ok, err := a.casFor(ctx, key, cond.Revision)
		if err != nil {
			return err
		}
		if !ok {
			return conflict
		}
		if err := a.step(ctx, "delete", key); err != nil {
			return err
		}
		tomb.CasID = id
		if err := a.c.CompareAndSwap(tomb); err != nil {
			if lost(err) {
				return conflict
			}
			return a.fail(ctx, "delete", key, err)
		}
	}
	// A leftover index entry is harmless: List skips and prunes tombstones.
	a.indexed(ctx, "unindex", key, a.indexRemove(ctx, key))
	return nil
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.step(ctx, "list", ""); err != nil {
		return nil, err
	}
	idx, err := a.c.Get(a.index)
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return []string{}, nil
	case err != nil:
		return nil, a.fail(ctx, "list", "", err)
	}
	if idx.Flags != flagIndex {
		return nil, driver.Wrap(driver.ErrCorrupt, "memcached: list: the index item was not written by this adapter", nil)
	}
	names := splitIndex(idx.Value)
	if len(names) == 0 {
		return []string{}, nil
	}
	byKey := make(map[string]string, len(names))
	keys := make([]string, 0, len(names))
	for _, n := range names {
		k := a.key(n)
		byKey[k] = n
		keys = append(keys, k)
	}
	if err := a.step(ctx, "list", ""); err != nil {
		return nil, err
	}
	items, err := a.c.GetMulti(keys)
	if err != nil {
		return nil, a.fail(ctx, "list", "", err)
	}
	live := make([]string, 0, len(names))
	var gone []string
	for _, k := range keys {
		it, ok := items[k]
		switch {
		case ok && it.Flags != flagTombstone:
			live = append(live, byKey[k])
		case ok:
			// Deleted by a client that stopped before unindexing it.
			gone = append(gone, byKey[k])
		default:
			if a.log != nil {
				a.log.LogAttrs(ctx, slog.LevelWarn, "memcached: an indexed profile has vanished, evicted or expired; its refresh token is lost",
					slog.String("profile", byKey[k]))
			}
			gone = append(gone, byKey[k])
		}
	}
	// Pruning is housekeeping: List has its answer even if it fails.
	for _, n := range gone {
		if err := a.indexRemove(ctx, n); err != nil {
			break
		}
	}
	return live, nil
}

// Close implements driver.Adapter. It closes the client only when the
// Adapter made it (OpenURL, storage.Open); see New.
func (a *Adapter) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	if a.owned {
		if err := a.c.Close(); err != nil {
			return driver.Wrap(driver.ErrUnavailable, "memcached: close", err)
		}
	}
	return nil
}

// step is called before every round trip: a closed adapter or a finished
// ctx stops the operation there, since gomemcache cannot be interrupted.
func (a *Adapter) step(ctx context.Context, op, key string) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "memcached: "+op+" "+strconv.Quote(key), nil)
	}
	return ctx.Err()
}

// lost reports whether a cas, add or delete lost to another client or
// found the item gone: a conflict, not a failure.
func lost(err error) bool {
	return errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss)
}

// fail maps a gomemcache error to the storage sentinels. gomemcache's
// errors name a server address or a protocol line, never a value.
func (a *Adapter) fail(ctx context.Context, op, key string, err error) error {
	msg := "memcached: " + op
	if key != "" {
		msg += " " + strconv.Quote(key)
	}
	if cerr := ctx.Err(); cerr != nil {
		return driver.Wrap(cerr, msg, cerr)
	}
	var netErr net.Error
	var connectErr *memcache.ConnectTimeoutError
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return driver.Wrap(driver.ErrNotFound, msg, err)
	case errors.Is(err, memcache.ErrCASConflict), errors.Is(err, memcache.ErrNotStored):
		return driver.Wrap(driver.ErrConflict, msg, err)
	case errors.Is(err, memcache.ErrMalformedKey):
		return driver.Wrap(driver.ErrInvalid, msg, err)
	case strings.Contains(err.Error(), "object too large"):
		return driver.Wrap(driver.ErrInvalid, msg+": the item is larger than memcached's item size limit (raise it with memcached -I)", err)
	case errors.As(err, &netErr), errors.As(err, &connectErr), errors.Is(err, memcache.ErrNoServers), errors.Is(err, memcache.ErrServerError):
		return driver.Wrap(driver.ErrUnavailable, msg, err)
	default:
		// Short reads, unexpected protocol lines, out of memory with -M:
		// the server or the path to it is not well; it may pass.
		return driver.Wrap(driver.ErrUnavailable, msg, err)
	}
}

// encode prepends a fresh random revision to value.
func encode(value []byte) (driver.Revision, []byte) {
	raw := make([]byte, revLen+len(value))
	rand.Read(raw[:revLen])
	copy(raw[revLen:], value)
	return driver.Revision(hex.EncodeToString(raw[:revLen])), raw
}

// decode splits a profile item; live is false for a tombstone.
func decode(it *memcache.Item) (rev driver.Revision, value []byte, live bool, err error) {
	switch it.Flags {
	case flagTombstone:
		return "", nil, false, nil
	case flagLive:
		if len(it.Value) < revLen {
			return "", nil, false, errors.New("item shorter than its revision")
		}
		return driver.Revision(hex.EncodeToString(it.Value[:revLen])), it.Value[revLen:], true, nil
	default:
		return "", nil, false, fmt.Errorf("item flags %#x: not written by this adapter", it.Flags)
	}
}
