// Package etcd stores tokencache profiles in etcd v3 through
// go.etcd.io/etcd/client/v3.
//
// # Layout
//
// Each profile is one etcd key, PREFIX+NAME (the default prefix is
// "tokencache/"), whose value is the profile's bytes after a 21-byte stamp:
// a NUL byte, "tcw1" and the id of the write, 16 random bytes, which tells
// a write whose answer was lost from another writer's (see Guarantees).
// Values without the stamp, such as written by etcdctl, are read as they
// are. The name is used as it is: etcd keys are arbitrary bytes, so no
// escaping is needed,
// and a name may contain "/". Everything under the prefix belongs to the
// store, so give each independent store its own prefix.
//
// # Guarantees
//
// The revision of a profile is the ModRevision etcd gives its key, in
// decimal. etcd makes it, not the client: it is the cluster-wide revision
// of the write that last changed the key, strictly increasing, never
// reused, so a profile deleted and created again can never come back with
// a revision someone still holds (no ABA). A conditional Put or Delete is
// one transaction: Txn(If(ModRevision(key) = R)).Then(Put) for a revision,
// If(CreateRevision(key) = 0) for "absent". etcd applies transactions in
// one total order through Raft, so of N concurrent writers on one revision
// exactly one wins, and an acknowledged write is on a majority of members'
// disks: it survives the loss of any minority, the leader included.
// Reads are linearizable (a quorum read), so a Get after a write that
// returned sees it, from any member.
//
// What etcd cannot promise, and what the adapter does about it: a request
// that fails on the way (a member killed, a leader change, a timeout) may
// still have been applied, or may apply later. Returning ErrUnavailable
// then would make a caller that has in fact won believe it lost, so after
// such a failure the adapter reads the key back. If it holds this write
// (its id, not just its bytes: another writer may have stored the very
// same bytes), Put returns its revision. If the condition still holds, the
// write has not applied (the revision would have moved), and the
// transaction is sent again; every attempt is conditioned on the same
// revision, so at most one of them can apply. Otherwise another write is
// there, and a write conditioned on revision R can only have applied as
// the key's first change after R: the adapter reads that change from
// etcd's history, and it is either this write (success, with its
// revision, though another writer has since built on it) or not
// (ErrConflict: nothing changed). Where history cannot tell, the outcome
// is reported as unknown with ErrUnavailable, never guessed: a
// conditional Delete whose key another deletion also removed, a create
// ("if absent") whose key another writer now holds, or history compacted
// away. Each request is given a fifth of the call's timeout, so that one
// stuck on a member that lost its leader is sent again, most likely to
// another member. When the cluster does not answer within the call's
// timeout (no quorum) the result is ErrUnavailable too, and the write may
// still apply later, once a leader is elected: callers must treat
// ErrUnavailable from a write as "unknown", as tokencache's refresh
// protocol does (it re-reads and writes again under the lineage rule).
//
// A revision means something only to the cluster that made it: after a
// restore from a snapshot into a new cluster, or an etcd data directory
// lost and recreated, a revision held from before can name a different
// write. The values a client wrote are bounded by etcd's
// --max-request-bytes (1.5 MiB by default).
//
// List reads the keys under the prefix (keys only, not values), in pages
// of 1000, all at the revision of the first page, so it is a snapshot of
// one moment even when profiles change meanwhile.
//
// # Change notification
//
// The Adapter implements driver.Watcher with etcd's Watch. Wait(key, R)
// reads the key (one linearizable read) and returns at once if its
// revision is no longer R; otherwise it watches the key from the revision
// after that read, S+1. etcd replays every change after S from its
// history, so a change made between the read and the watch is not missed.
// Reading first rather than watching from R+1 matters for latency, not
// correctness: etcd serves a watch that starts in the past from a catch-up
// loop that runs every 100 ms, and on a busy cluster the revision is
// always past R; a watch from the current revision + 1 is notified as
// writes apply. A watch whose history was compacted away returns at once
// (the key may have changed). Watches require a
// leader: on a member cut off from the quorum the watch ends and Wait
// returns ErrUnavailable instead of sleeping on a stale member. The client
// moves a watch to another member when its member fails, resuming after
// the last revision it saw.
//
// # URLs
//
// Importing the package registers the "etcd" and "etcds" (TLS) schemes with
// storage.Open:
//
//	etcd://[user:password@]host1:port1[,host2:port2,...][/prefix/][?options]
//	etcds://...                          TLS, same forms; or etcd://...?tls=true
//
// The path is the key prefix, with a "/" added when it does not end in one;
// without a path the prefix is DefaultPrefix, and the prefix option sets
// it verbatim. Options: tls (true or false), ca_file, cert_file and
// key_file (PEM files: the CA that signed the members' certificates, and a
// client certificate and key), server_name (to verify the members'
// certificates against), dial_timeout (bounds authenticating with a
// username and password, 5s by default) and timeout (bounds each call,
// including its retries across members, 5s by default). Opening does not
// connect, except to authenticate when the URL has a username; calls
// connect and fail with ErrUnavailable while no member answers.
//
// # Errors
//
// A call that no member answers within the adapter's timeout fails with
// ErrUnavailable. One that runs into the caller's deadline first matches
// both context.DeadlineExceeded and ErrUnavailable: etcd's client waits for
// a member to answer where other clients fail at once on a refused
// connection, so a cluster that is down shows up as a deadline. A
// cancelled context is only the caller's error. Authentication failures
// are ErrInvalid, a permission denied or etcd's NOSPACE alarm ErrReadOnly,
// a value over the request limit ErrInvalid. A write etcd refused that way
// also matches driver.ErrNotApplied: it certainly changed nothing; other
// failed writes may have applied (see Guarantees).
//
// Passwords are never part of an error: use secret.RedactURL to log a URL.
package etcd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/storage/driver"
)

// DefaultPrefix is where profiles live when Options.Prefix is empty.
const DefaultPrefix = "tokencache/"

// DefaultTimeout bounds a call when Options.Timeout is zero: long enough for
// a three-member cluster on one network to elect a new leader (about two
// election timeouts, one second each by default) and still answer.
const DefaultTimeout = 5 * time.Second

// listPage is how many keys one range request of List returns.
const listPage = 1000

// Options configure New. nil, and every zero field, mean the default.
type Options struct {
	// Prefix is put in front of every key; DefaultPrefix when empty.
	Prefix string
	// Timeout bounds each call, retries included, when the caller's ctx
	// does not end sooner; DefaultTimeout when zero. A call that reaches
	// it fails with ErrUnavailable. Wait is not bounded by it.
	Timeout time.Duration
}

// Adapter implements driver.Adapter and driver.Watcher over etcd.
type Adapter struct {
	c       *clientv3.Client
	prefix  string
	timeout time.Duration
	owned   bool // Close closes c

	closed    atomic.Bool
	done      chan struct{} // closed by Close, wakes every Wait
	closeOnce sync.Once
}

// New returns an Adapter over client. The caller keeps ownership of client:
// Close stops the Adapter but leaves client open, since it may serve other
// uses. nil opts means the defaults.
func New(client *clientv3.Client, opts *Options) (*Adapter, error) {
	if client == nil {
		return nil, driver.Wrap(driver.ErrInvalid, "etcd: no client", nil)
	}
	if opts == nil {
		opts = &Options{}
	}
	a := &Adapter{c: client, prefix: opts.Prefix, timeout: opts.Timeout, done: make(chan struct{})}
	if a.prefix == "" {
		a.prefix = DefaultPrefix
	}
	if a.timeout <= 0 {
		a.timeout = DefaultTimeout
	}
	return a, nil
}

// Client returns the etcd client the Adapter uses.
func (a *Adapter) Client() *clientv3.Client { return a.c }

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.alive(ctx, "get", key); err != nil {
		return nil, "", err
	}
	ctx, cancel := a.bound(ctx)
	defer cancel()
	kv, _, err := a.read(ctx, "get", key)
	if err != nil {
		return nil, "", err
	}
	if kv == nil {
		return nil, "", driver.Wrap(driver.ErrNotFound, "etcd: get "+strconv.Quote(key), nil)
	}
	return kv.Value, revision(kv.ModRevision), nil
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if err := a.alive(ctx, "put", key); err != nil {
		return "", err
	}
	op := "put " + strconv.Quote(key)
	cmp, ok := a.compare(key, cond)
	if !ok {
		return "", driver.Wrap(driver.ErrConflict, "etcd: "+op+" "+cond.String(), nil)
	}
	ctx, cancel := a.bound(ctx)
	defer cancel()
	k := a.prefix + key
	id, stored := stamp(value)
	unknown := false // an attempt failed on the way: it may have applied
	for attempt := 0; ; attempt++ {
		actx, acancel := a.attempt(ctx)
		txn := a.c.Txn(actx)
		if cmp != nil {
			txn = txn.If(*cmp)
		}
		resp, err := txn.Then(clientv3.OpPut(k, stored)).Commit()
		acancel()
		switch {
		case err == nil && resp.Succeeded:
			// The transaction's revision is the one it gave the key.
			return revision(resp.Header.Revision), nil
		case err == nil && !unknown:
			return "", driver.Wrap(driver.ErrConflict, "etcd: "+op+" "+cond.String(), nil)
		case err != nil:
			if err := a.definite(ctx, "put", key, err); err != nil {
				return "", refused(err, unknown)
			}
			unknown = true
		}
		// The outcome of an earlier attempt is unknown (it may have
		// applied late, and made this one fail): read what is there.
		kv, _, err := a.read(ctx, "put", key)
		if err != nil {
			return "", err
		}
		if kv != nil && kv.id == id {
			return revision(kv.ModRevision), nil // it applied, and is still there
		}
		if cond.Holds(current(kv)) {
			// Not applied (it would have moved the revision): send again.
			// Every attempt carries the same condition, so at most one
			// of them applies.
			if err := a.pause(ctx, "put", key, attempt); err != nil {
				return "", err
			}
			continue
		}
		// Someone else's write is there. Ours may have applied first
		// and been built on: ask etcd's history.
		return a.afterLost(ctx, "put", key, cond, id)
	}
}

// afterLost decides the outcome of a write whose answer was lost, once the
// key holds neither that write nor the revision its condition named. A
// write conditioned on revision R can only have applied as the key's first
// change after R, so that change, read from etcd's history, is the answer:
// a put carrying the write's id (see stamp) is the write, anything else
// means it lost. For a delete (id "") the first change being a deletion
// cannot be told from another writer's deletion, nor can a create ("if
// absent") be placed without a revision to start from: the outcome is then
// unknown and the error ErrUnavailable, as when the cluster does not
// answer, never a guess.
func (a *Adapter) afterLost(ctx context.Context, op, key string, cond driver.Condition, id string) (driver.Revision, error) {
	msg := "etcd: " + op + " " + strconv.Quote(key)
	conflict := driver.Wrap(driver.ErrConflict, msg+" "+cond.String(), nil)
	r, ok := parseRevision(cond.Revision)
	if cond.Kind != driver.Match || !ok {
		return "", driver.Wrap(driver.ErrUnavailable, msg+": outcome unknown: the answer was lost and the key has changed since", nil)
	}
	ev, err := a.firstChange(ctx, a.prefix+key, r+1)
	switch {
	case err != nil:
		return "", driver.Wrap(driver.ErrUnavailable, msg+": outcome unknown: the answer was lost and the key's history cannot be read", err)
	case ev == nil:
		// No change after R: the key never had revision R (the condition
		// was stale), so nothing was written.
		return "", conflict
	case ev.Type == clientv3.EventTypePut && id != "":
		if _, got := unstamp(ev.Kv.Value); got == id {
			return revision(ev.Kv.ModRevision), nil // ours, since built on
		}
		return "", conflict
	case ev.Type == clientv3.EventTypePut:
		return "", conflict // a delete would have been a deletion
	case id != "":
		return "", conflict // a put would have been a put
	default:
		return "", driver.Wrap(driver.ErrUnavailable, msg+": outcome unknown: the answer was lost and the key was deleted, by this call or another", nil)
	}
}

// firstChange returns the first change of key at or after revision from,
// or nil when there is none up to the store's current revision.
func (a *Adapter) firstChange(ctx context.Context, key string, from int64) (*clientv3.Event, error) {
	actx, acancel := a.attempt(ctx)
	defer acancel()
	// A read of the key at the current revision ends the search: a key
	// whose current version is older than from has not changed since.
	resp, err := a.c.Get(actx, key)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) > 0 && resp.Kvs[0].ModRevision < from {
		return nil, nil
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(actx))
	defer wcancel()
	for w := range a.c.Watch(wctx, key, clientv3.WithRev(from)) {
		if w.CompactRevision != 0 {
			return nil, fmt.Errorf("history compacted up to revision %d", w.CompactRevision)
		}
		if err := w.Err(); err != nil {
			return nil, err
		}
		if len(w.Events) > 0 {
			return w.Events[0], nil
		}
	}
	if err := actx.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("watch ended")
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := a.alive(ctx, "delete", key); err != nil {
		return err
	}
	op := "delete " + strconv.Quote(key)
	cmp, ok := a.compare(key, cond)
	if !ok {
		return driver.Wrap(driver.ErrConflict, "etcd: "+op+" "+cond.String(), nil)
	}
	ctx, cancel := a.bound(ctx)
	defer cancel()
	k := a.prefix + key
	unknown := false
	for attempt := 0; ; attempt++ {
		actx, acancel := a.attempt(ctx)
		txn := a.c.Txn(actx)
		if cmp != nil {
			txn = txn.If(*cmp)
		}
		// "If absent" deletes nothing: it only succeeds or conflicts.
		var then []clientv3.Op
		if cond.Kind != driver.Absent {
			then = append(then, clientv3.OpDelete(k))
		}
		resp, err := txn.Then(then...).Commit()
		acancel()
		switch {
		case err == nil && resp.Succeeded:
			return nil
		case err == nil && !unknown:
			return driver.Wrap(driver.ErrConflict, "etcd: "+op+" "+cond.String(), nil)
		case err != nil:
			if err := a.definite(ctx, "delete", key, err); err != nil {
				return refused(err, unknown)
			}
			unknown = true
		}
		kv, _, err := a.read(ctx, "delete", key)
		if err != nil {
			return err
		}
		if !cond.Holds(current(kv)) {
			switch cond.Kind {
			case driver.Absent:
				return driver.Wrap(driver.ErrConflict, "etcd: "+op+" "+cond.String(), nil)
			case driver.Match:
				_, err := a.afterLost(ctx, "delete", key, cond, "")
				return err
			}
		}
		if cond.Kind == driver.Unconditional && kv == nil {
			return nil // gone: what an unconditional delete asks for
		}
		if err := a.pause(ctx, "delete", key, attempt); err != nil {
			return err
		}
	}
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.alive(ctx, "list", ""); err != nil {
		return nil, err
	}
	ctx, cancel := a.bound(ctx)
	defer cancel()
	end := clientv3.GetPrefixRangeEnd(a.prefix)
	from := a.prefix
	var (
		names []string
		rev   int64 // every page at the first page's revision
	)
	for attempt := 0; ; {
		// Ranges come in key order, so a page ends where the next begins.
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(listPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		actx, acancel := a.attempt(ctx)
		resp, err := a.c.Get(actx, from, opts...)
		acancel()
		if err != nil {
			if err := a.definite(ctx, "list", "", err); err != nil {
				return nil, err
			}
			if err := a.pause(ctx, "list", "", attempt); err != nil {
				return nil, err
			}
			attempt++
			continue
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			names = append(names, string(kv.Key[len(a.prefix):]))
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return names, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Wait implements driver.Watcher.
func (a *Adapter) Wait(ctx context.Context, key string, rev driver.Revision) error {
	if err := a.alive(ctx, "wait", key); err != nil {
		return err
	}
	if _, ok := parseRevision(rev); !ok && rev != "" {
		return nil // not a revision etcd made: the key's differs
	}
	// Read first, then watch from just after the read. Watching from rev+1
	// straight away would miss nothing either, but etcd serves a watch
	// that starts in the past from a catch-up loop that runs every 100 ms,
	// and a busy cluster's revision is always past rev; one that starts
	// at the current revision + 1 is notified as writes apply.
	rctx, rcancel := a.bound(ctx)
	kv, header, err := a.read(rctx, "wait", key)
	rcancel()
	if err != nil {
		return err
	}
	if current(kv) != rev {
		return nil
	}
	from := header + 1
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := a.c.Watch(wctx, a.prefix+key, clientv3.WithRev(from))
	for {
		select {
		case resp, ok := <-ch:
			switch {
			case !ok && a.closed.Load():
				return driver.Wrap(driver.ErrClosed, "etcd: wait "+strconv.Quote(key), nil)
			case !ok || ctx.Err() != nil:
				if err := ctx.Err(); err != nil {
					return err
				}
				return driver.Wrap(driver.ErrUnavailable, "etcd: wait "+strconv.Quote(key)+": watch ended", nil)
			case resp.CompactRevision != 0, len(resp.Events) > 0:
				// A change, or history compacted past from: may have changed.
				return nil
			case resp.Err() != nil:
				return a.fail(ctx, "wait", key, resp.Err())
			}
			// Created or progress notifications: keep waiting.
		case <-ctx.Done():
			return ctx.Err()
		case <-a.done:
			return driver.Wrap(driver.ErrClosed, "etcd: wait "+strconv.Quote(key), nil)
		}
	}
}

// Close implements driver.Adapter. It closes the client only when the
// Adapter made it (OpenURL, storage.Open); see New.
func (a *Adapter) Close() error {
	var err error
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		close(a.done)
		if a.owned {
			if cerr := a.c.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
				err = driver.Wrap(driver.ErrUnavailable, "etcd: close", cerr)
			}
		}
	})
	return err
}

// compare is the transaction guard for cond: nil for an unconditional
// write; ok is false when cond names a revision etcd cannot have made,
// which therefore cannot match.
func (a *Adapter) compare(key string, cond driver.Condition) (cmp *clientv3.Cmp, ok bool) {
	k := a.prefix + key
	switch cond.Kind {
	case driver.Absent:
		c := clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
		return &c, true
	case driver.Match:
		r, ok := parseRevision(cond.Revision)
		if !ok {
			return nil, false
		}
		c := clientv3.Compare(clientv3.ModRevision(k), "=", r)
		return &c, true
	default:
		return nil, true
	}
}

// read gets key with retries, returning nil for a missing key, and the
// revision of the store at the read.
func (a *Adapter) read(ctx context.Context, op, key string) (*kvPair, int64, error) {
	for attempt := 0; ; attempt++ {
		actx, acancel := a.attempt(ctx)
		resp, err := a.c.Get(actx, a.prefix+key)
		acancel()
		if err == nil {
			if len(resp.Kvs) == 0 {
				return nil, resp.Header.Revision, nil
			}
			kv := resp.Kvs[0]
			v, id := unstamp(kv.Value)
			return &kvPair{Value: v, ModRevision: kv.ModRevision, id: id}, resp.Header.Revision, nil
		}
		if err := a.definite(ctx, op, key, err); err != nil {
			return nil, 0, err
		}
		if err := a.pause(ctx, op, key, attempt); err != nil {
			return nil, 0, err
		}
	}
}

type kvPair struct {
	Value       []byte // as the caller wrote it, without the stamp
	ModRevision int64
	id          string // of the write that stored it; "" when unstamped
}

// stampMagic begins every value the Adapter writes; the write's id, 16
// random bytes, follows it, then the caller's bytes. The id tells a write
// whose answer was lost from another writer's write of the same bytes (see
// afterLost). A value without it (written by another client, or by an
// older version of this package) is read as it is: profiles are JSON, and
// no JSON text begins with a NUL byte.
const stampMagic = "\x00tcw1"

const stampLen = len(stampMagic) + 16

// stamp returns a fresh write id and value stamped with it, as stored.
func stamp(value []byte) (id, stored string) {
	b := make([]byte, stampLen+len(value))
	copy(b, stampMagic)
	rand.Read(b[len(stampMagic):stampLen]) // never fails
	copy(b[stampLen:], value)
	return string(b[len(stampMagic):stampLen]), string(b)
}

// unstamp splits a stored value into the caller's bytes and the write's id.
func unstamp(stored []byte) (value []byte, id string) {
	if len(stored) >= stampLen && string(stored[:len(stampMagic)]) == stampMagic {
		return stored[stampLen:], string(stored[len(stampMagic):stampLen])
	}
	return stored, ""
}

func current(kv *kvPair) driver.Revision {
	if kv == nil {
		return ""
	}
	return revision(kv.ModRevision)
}

// bound gives a call the adapter's timeout unless ctx ends sooner.
func (a *Adapter) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, a.timeout, errTimeout)
}

// attempt bounds one request of a call, so that a request stuck on a
// member that lost its leader (a follower holds a forwarded proposal until
// its own request timeout, 7 s by default) is given up and sent again,
// most likely to another member, while the call still has time.
func (a *Adapter) attempt(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(a.timeout/5, 500*time.Millisecond))
}

// errTimeout is the cause of a call that ran out of the adapter's own time,
// as opposed to the caller's.
var errTimeout = errors.New("no etcd member answered in time")

// pause waits before retry attempt, or reports why there is no time left.
func (a *Adapter) pause(ctx context.Context, op, key string, attempt int) error {
	if err := backoff.Sleep(ctx, backoff.Exponential(20*time.Millisecond, attempt)); err != nil {
		return a.fail(ctx, op, key, err)
	}
	return nil
}

// refused marks err, a write's definite failure, driver.ErrNotApplied
// when etcd refused the write (credentials, permission, size, the NOSPACE
// alarm) and no earlier attempt of it may have applied (unknown).
func refused(err error, unknown bool) error {
	if !unknown && (errors.Is(err, driver.ErrInvalid) || errors.Is(err, driver.ErrReadOnly)) {
		return driver.NotApplied(err)
	}
	return err
}

// definite returns nil when err leaves the outcome of a call unknown and a
// retry (after a read, for writes) may succeed: the member or the network
// failed, a leader election is in progress, the request timed out. Every
// other error, mapped to a sentinel, is returned as it is.
func (a *Adapter) definite(ctx context.Context, op, key string, err error) error {
	if ctx.Err() != nil || a.closed.Load() {
		return a.fail(ctx, op, key, err)
	}
	if retryable(err) || errors.Is(err, context.DeadlineExceeded) {
		// The latter is an attempt's own bound: ctx has time left.
		return nil
	}
	return a.fail(ctx, op, key, err)
}

func retryable(err error) bool {
	code := status.Code(err) // of the gRPC error; rpctypes.Error drops it
	err = rpctypes.Error(err)
	switch {
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrLeaderChanged),
		errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost), errors.Is(err, rpctypes.ErrTimeoutWaitAppliedIndex),
		errors.Is(err, rpctypes.ErrStopped), errors.Is(err, rpctypes.ErrNotCapable),
		errors.Is(err, rpctypes.ErrTooManyRequests), errors.Is(err, rpctypes.ErrUnhealthy):
		return true
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

func (a *Adapter) alive(ctx context.Context, op, key string) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "etcd: "+op+" "+strconv.Quote(key), nil)
	}
	return ctx.Err()
}

// fail maps a client error to the storage sentinels. The messages name
// the operation and the profile, never a value; the client's own errors
// name at most a member's address.
func (a *Adapter) fail(ctx context.Context, op, key string, err error) error {
	msg := "etcd: " + op
	if key != "" {
		msg += " " + strconv.Quote(key)
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(context.Cause(ctx), errTimeout) {
			// Our own bound, not the caller's: the store did not answer.
			return driver.Wrap(driver.ErrUnavailable, fmt.Sprintf("%s: no answer within %v", msg, a.timeout), lastCause(err))
		}
		if errors.Is(cerr, context.DeadlineExceeded) {
			// The caller's deadline. etcd's client waits for a member to
			// answer where other clients fail at once on a refused
			// connection, so a cluster that is down shows up here: the
			// error is both the caller's deadline and ErrUnavailable.
			unavailable := driver.Wrap(driver.ErrUnavailable, msg+": no answer before the caller's deadline", lastCause(err))
			return fmt.Errorf("%w (%w)", unavailable, cerr)
		}
		return driver.Wrap(cerr, msg, cerr)
	}
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, msg, nil)
	}
	why, kind := classify(err)
	return driver.Wrap(kind, msg+why, rpctypes.Error(err))
}

// classify picks the sentinel for an error of the client that is not a
// context's, with a note for the message.
func classify(err error) (why string, kind error) {
	code := status.Code(err)
	err = rpctypes.Error(err)
	switch {
	case errors.Is(err, rpctypes.ErrRequestTooLarge) || code == codes.ResourceExhausted:
		return ": value too large for etcd (--max-request-bytes)", driver.ErrInvalid
	case errors.Is(err, rpctypes.ErrNoSpace):
		// The NOSPACE alarm: the cluster refuses writes until defragmented.
		return "", driver.ErrReadOnly
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return ": permission denied", driver.ErrReadOnly
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrUserEmpty),
		errors.Is(err, rpctypes.ErrInvalidAuthToken), errors.Is(err, rpctypes.ErrAuthNotEnabled):
		return ": credentials", driver.ErrInvalid
	case errors.Is(err, context.Canceled) || code == codes.Canceled:
		// The client was closed under the call.
		return "", driver.ErrClosed
	default:
		return "", driver.ErrUnavailable
	}
}

// lastCause keeps the server's or the network's error that preceded a
// timeout, but not the timeout itself: driver.Wrap would turn a
// DeadlineExceeded cause into the caller's deadline.
func lastCause(err error) error {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Canceled {
		return nil
	}
	return err
}

func revision(r int64) driver.Revision { return driver.Revision(strconv.FormatInt(r, 10)) }

func parseRevision(rev driver.Revision) (int64, bool) {
	r, err := strconv.ParseInt(string(rev), 10, 64)
	return r, err == nil && r > 0
}
