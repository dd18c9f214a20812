// Package redis stores tokencache profiles in Redis through go-redis/v9.
// It works with anything that satisfies redis.UniversalClient: a single
// server, a Sentinel-managed failover group, or a Redis Cluster.
//
// # Layout
//
// Each profile is one hash at PREFIX+NAME (the default prefix is
// "tokencache:") with two fields: "v", the value, and "r", its revision.
// Keeping the revision beside the value in one key is what makes the
// adapter work unchanged on Cluster: every script touches exactly one key,
// so it never crosses a slot. In NAME the bytes '%', '{' and '}' are
// percent-encoded; without that, a profile called "a{b}" would carry a
// Cluster hash tag and share a slot with unrelated keys, and names would
// not read back from SCAN unambiguously. A prefix may contain a hash tag on
// purpose (say "{tokencache}:") to keep every profile in one slot.
//
// # Guarantees
//
// A conditional Put or Delete runs as one Lua script (EVALSHA, falling back
// to EVAL once per server), so the compare and the write are atomic on the
// server that owns the key: of N concurrent writers on one revision exactly
// one wins. Revisions are 16 random bytes from crypto/rand, made by the
// client, rather than a counter: a profile deleted and created again can
// never come back with a revision someone still holds (no ABA), and nothing
// depends on a counter surviving a restart or a failover.
//
// An error does not prove that nothing was written. A script that reached
// the server may have run although its reply was lost (a timeout, the
// caller's ctx ending, a connection cut after EVALSHA was sent); the call
// then returns ErrUnavailable or the ctx's error while the write stands.
// Callers treat such a write as possibly applied: re-read before deciding,
// as the refresh protocol's lineage rule does. A conflict (ErrConflict), by
// contrast, means that nothing changed, with one exception: go-redis sends
// a command again when its connection failed after sending it, and a
// conditional delete whose first run deleted the key then finds it gone. A
// put sent again recognizes its own revision and reports it written.
//
// Redis replication is asynchronous. After a failover (Sentinel or Cluster)
// the new master can miss the last writes the old one acknowledged, so a
// conditional write acknowledged just before a failover can be lost; that is
// Redis's guarantee, not one this package can raise. The same holds for a
// restart without persistence. Where rotated refresh tokens live only in
// Redis, run it with AOF persistence (appendonly yes) and accept that a
// failover may cost a re-authorization.
//
// List uses SCAN with MATCH PREFIX*, over every master on a Cluster, so it
// sees profiles that existed for the whole scan and may or may not see ones
// created or deleted meanwhile.
//
// # Change notification
//
// The Adapter implements driver.Watcher. Every successful write or delete
// publishes the new revision on a channel named like the key: PUBLISH on a
// single server or Sentinel group, SPUBLISH (a shard channel, Redis 7) on a
// Cluster, where it hashes to the key's own slot and so stays on one shard
// instead of being broadcast to every node. A Cluster older than Redis 7.0
// has no SPUBLISH: the script then publishes with PUBLISH, which a Cluster
// broadcasts, the adapter keeps to PUBLISH from then on, and Wait, which
// asks the server once (COMMAND INFO), subscribes with SUBSCRIBE. The
// notification is published inside the write's script but cannot fail it:
// a write that landed is reported as done even if no waiter could be told
// (a waiter not told wakes when its ctx ends; in the refresh protocol, by
// the lease's end at the latest, and re-reads). Wait subscribes, re-reads the
// revision once the subscription is confirmed, so that a change made
// between the caller's read and the subscription is not missed, and then
// sleeps until a message arrives. go-redis re-subscribes after a lost
// connection; Wait re-reads the revision on every re-subscription for the
// same reason.
//
// # URLs
//
// Importing the package registers the "redis" and "rediss" (TLS) schemes
// with storage.Open:
//
//	redis://[user:password@]host:port[/db][?prefix=tc:]
//	rediss://...                                   TLS, same forms
//	redis://host1:port1,host2:port2,host3:port3/?cluster=true
//	redis://host1:port1/?cluster=true&addr=host2:port2&addr=host3:port3
//	redis://[user:pass@]sentinel1:26379,sentinel2:26379/0?master_name=mymaster&password=MASTERPASS
//
// Several hosts mean a Cluster unless master_name is given; cluster=true
// with one host makes it a Cluster seed. With master_name the hosts are
// Sentinels, the URL's user information authenticates to the Sentinels, and
// the username and password query parameters to the master (go-redis's
// ParseFailoverURL convention). The go-redis option parameters
// (dial_timeout, pool_size, protocol, ...) are accepted as documented for
// redis.ParseURL, ParseClusterURL and ParseFailoverURL. prefix sets
// Options.Prefix. context_timeout_enabled defaults to true here, so that a
// caller's ctx deadline bounds each call. IPv6 literal hosts need the
// addr= form. Opening does not connect; the first call does.
//
// Passwords are never part of an error: use secret.RedactURL to log a URL.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokencache/tokencache/storage/driver"
)

// DefaultPrefix is where profiles live when Options.Prefix is empty.
const DefaultPrefix = "tokencache:"

// Options configure New. nil, and every zero field, mean the default.
type Options struct {
	// Prefix is put in front of every key; DefaultPrefix when empty. Give
	// each independent store sharing a server its own prefix.
	Prefix string
}

// Adapter implements driver.Adapter and driver.Watcher over Redis.
type Adapter struct {
	c      goredis.UniversalClient
	prefix string
	owned  bool // Close closes c

	// shard is whether notifications travel on shard channels (SPUBLISH,
	// SSUBSCRIBE): on a Cluster unless the servers turn out not to have
	// them (before Redis 7.0), in which case plain PUBLISH and SUBSCRIBE.
	shard atomic.Int32 // one of shardOff, shardUnknown, shardOn

	closed    atomic.Bool
	done      chan struct{} // closed by Close, wakes every Wait
	closeOnce sync.Once
}

// New returns an Adapter over client. The caller keeps ownership of client:
// Close stops the Adapter but leaves client open, since it may serve other
// uses. nil opts means the defaults.
func New(client goredis.UniversalClient, opts *Options) (*Adapter, error) {
	if client == nil {
		return nil, driver.Wrap(driver.ErrInvalid, "redis: no client", nil)
	}
	if opts == nil {
		opts = &Options{}
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	a := &Adapter{c: client, prefix: prefix, done: make(chan struct{})}
	if _, ok := client.(*goredis.ClusterClient); ok {
		a.shard.Store(shardUnknown)
	}
	return a, nil
}

const (
	shardOff     = 0 // PUBLISH and SUBSCRIBE
	shardUnknown = 1 // a Cluster: SPUBLISH is tried, with PUBLISH as fallback
	shardOn      = 2 // a Cluster whose servers have SPUBLISH
)

// publishCmd is the command the scripts notify with.
func (a *Adapter) publishCmd() string {
	if a.shard.Load() == shardOff {
		return "PUBLISH"
	}
	return "SPUBLISH"
}

// notified records what a script reported about its notification: 2 means
// that SPUBLISH is unknown to the server and PUBLISH did the job, so it is
// used from now on.
func (a *Adapter) notified(n int) {
	if n == notifiedByPublish {
		a.shard.Store(shardOff)
	}
}

// shardChannels reports whether Wait should subscribe with SSUBSCRIBE.
// On a Cluster it asks the server once whether it has the command: a
// waiter may never write, and so never learn it from a script's reply.
func (a *Adapter) shardChannels(ctx context.Context) bool {
	switch a.shard.Load() {
	case shardOff:
		return false
	case shardOn:
		return true
	}
	info, err := a.c.Do(ctx, "COMMAND", "INFO", "SPUBLISH").Slice()
	if err != nil {
		// Not cached: ask again next time. Shard channels meanwhile, as
		// on any Redis 7 Cluster.
		return true
	}
	if len(info) == 1 && info[0] == nil {
		a.shard.Store(shardOff)
		return false
	}
	a.shard.CompareAndSwap(shardUnknown, shardOn)
	return true
}

// Client returns the go-redis client the Adapter uses.
func (a *Adapter) Client() goredis.UniversalClient { return a.c }

// What the scripts return.
const (
	conflicted        = 0 // the condition did not hold; nothing changed
	written           = 1 // written (or deleted) and notified
	notifiedByPublish = 2 // written; SPUBLISH is unknown, PUBLISH notified
	notNotified       = 3 // written; the notification failed
)

// notifyLua publishes the new revision after a write. The write has
// landed by then, and a script's error does not undo it, so a failed
// notification must not fail the script: the caller would be told of an
// error and retry a write that happened. Redis Cluster before 7.0 has no
// SPUBLISH; PUBLISH, which a Cluster broadcasts to every node, stands in.
const notifyLua = `
local function notify(cmd, key, rev)
	local r = redis.pcall(cmd, key, rev)
	if type(r) ~= 'table' or not r.err then return 1 end
	if cmd ~= 'PUBLISH' then
		r = redis.pcall('PUBLISH', key, rev)
		if type(r) ~= 'table' or not r.err then return 2 end
	end
	return 3
end
`

// putScript stores a value and its revision when the condition holds.
// ARGV: mode ("any", "absent", "match"), expected revision, new revision,
// value, publish command. Returns conflicted, or one of the written codes.
//
// A key that holds, or recently held, the new revision was written by this
// very put: go-redis sends a command again when its connection failed
// after sending it (EOF, a read timeout), and the first run may have
// written, and been written over since by another client that read it.
// Only that run can have made the revision (16 random bytes), so the retry
// reports it written rather than a conflict, which would claim nothing
// changed. The key keeps its last historyLen revisions in field 'h' for
// this; a key lost altogether (a server restarted empty) loses them too.
var putScript = goredis.NewScript(notifyLua + `
local cur, h = unpack(redis.call('HMGET', KEYS[1], 'r', 'h'))
if cur == ARGV[3] then return 1 end
if h and string.find(' ' .. h .. ' ', ' ' .. ARGV[3] .. ' ', 1, true) then return 1 end
if ARGV[1] == 'absent' then
	if cur then return 0 end
elseif ARGV[1] == 'match' then
	if cur ~= ARGV[2] then return 0 end
end
local keep = {ARGV[3]}
if h then
	for r in string.gmatch(h, '%S+') do
		if #keep >= ` + historyLen + ` then break end
		keep[#keep + 1] = r
	end
end
redis.call('HSET', KEYS[1], 'v', ARGV[4], 'r', ARGV[3], 'h', table.concat(keep, ' '))
return notify(ARGV[5], KEYS[1], ARGV[3])
`)

// historyLen is how many of its latest revisions a key remembers, so that
// a put go-redis sent again recognises its own write even after others
// wrote over it; a retry comes within go-redis's backoff (milliseconds), a
// few writes at most.
const historyLen = "8"

// deleteScript removes the key when the condition holds; ARGV as for
// putScript without the value and new revision.
var deleteScript = goredis.NewScript(notifyLua + `
local cur = redis.call('HGET', KEYS[1], 'r')
if ARGV[1] == 'absent' then
	if cur then return 0 end
elseif ARGV[1] == 'match' then
	if cur ~= ARGV[2] then return 0 end
end
if cur then
	redis.call('DEL', KEYS[1])
	return notify(ARGV[3], KEYS[1], '')
end
return 1
`)

func mode(c driver.Condition) string {
	switch c.Kind {
	case driver.Absent:
		return "absent"
	case driver.Match:
		return "match"
	default:
		return "any"
	}
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.alive(ctx, "get", key); err != nil {
		return nil, "", err
	}
	vals, err := a.c.HMGet(ctx, a.key(key), "v", "r").Result()
	if err != nil {
		return nil, "", a.fail(ctx, "get", key, err)
	}
	v, vok := vals[0].(string)
	r, rok := vals[1].(string)
	if !vok || !rok {
		return nil, "", driver.Wrap(driver.ErrNotFound, "redis: get "+strconv.Quote(key), nil)
	}
	return []byte(v), driver.Revision(r), nil
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if err := a.alive(ctx, "put", key); err != nil {
		return "", err
	}
	rev := newRevision()
	n, err := putScript.Run(ctx, a.c, []string{a.key(key)},
		mode(cond), string(cond.Revision), string(rev), value, a.publishCmd()).Int()
	if err != nil {
		return "", a.fail(ctx, "put", key, err)
	}
	a.notified(n)
	if n == conflicted {
		return "", driver.Wrap(driver.ErrConflict, "redis: put "+strconv.Quote(key)+" "+cond.String(), nil)
	}
	return rev, nil
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := a.alive(ctx, "delete", key); err != nil {
		return err
	}
	n, err := deleteScript.Run(ctx, a.c, []string{a.key(key)},
		mode(cond), string(cond.Revision), a.publishCmd()).Int()
	if err != nil {
		return a.fail(ctx, "delete", key, err)
	}
	a.notified(n)
	if n == conflicted {
		return driver.Wrap(driver.ErrConflict, "redis: delete "+strconv.Quote(key)+" "+cond.String(), nil)
	}
	return nil
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.alive(ctx, "list", ""); err != nil {
		return nil, err
	}
	pattern := globEscape(a.prefix) + "*"
	var (
		mu   sync.Mutex
		seen = map[string]struct{}{}
	)
	scan := func(ctx context.Context, c goredis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			name, ok := a.name(it.Val())
			if !ok {
				continue // not ours: someone else's key under the prefix
			}
			mu.Lock()
			seen[name] = struct{}{}
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	switch c := a.c.(type) {
	case *goredis.ClusterClient:
		// Keys are spread over the masters; replicas would only repeat them.
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error { return scan(ctx, n) })
	case *goredis.Ring:
		err = c.ForEachShard(ctx, func(ctx context.Context, n *goredis.Client) error { return scan(ctx, n) })
	default:
		err = scan(ctx, a.c)
	}
	if err != nil {
		return nil, a.fail(ctx, "list", "", err)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	return names, nil
}

// Wait implements driver.Watcher.
func (a *Adapter) Wait(ctx context.Context, key string, rev driver.Revision) error {
	if err := a.alive(ctx, "wait", key); err != nil {
		return err
	}
	k := a.key(key)
	var ps *goredis.PubSub
	if a.shardChannels(ctx) {
		ps = a.c.SSubscribe(ctx, k)
	} else {
		ps = a.c.Subscribe(ctx, k)
	}
	defer ps.Close()
	// ChannelWithSubscriptions, unlike Receive, lets ctx and Close
	// interrupt the wait, and reports every (re-)subscription so that the
	// revision can be re-checked after each.
	ch := ps.ChannelWithSubscriptions()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return driver.Wrap(driver.ErrClosed, "redis: wait "+strconv.Quote(key), nil)
			}
			if _, msg := m.(*goredis.Message); msg {
				return nil
			}
			// Subscribed: anything written from now on will be published
			// to us, so the revision read now cannot miss a change.
			cur, err := a.c.HGet(ctx, k, "r").Result()
			if err != nil && !errors.Is(err, goredis.Nil) {
				return a.fail(ctx, "wait", key, err)
			}
			if driver.Revision(cur) != rev {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-a.done:
			return driver.Wrap(driver.ErrClosed, "redis: wait "+strconv.Quote(key), nil)
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
			if cerr := a.c.Close(); cerr != nil && !errors.Is(cerr, goredis.ErrClosed) {
				err = driver.Wrap(driver.ErrUnavailable, "redis: close", cerr)
			}
		}
	})
	return err
}

func (a *Adapter) alive(ctx context.Context, op, key string) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "redis: "+op+" "+strconv.Quote(key), nil)
	}
	return ctx.Err()
}

// fail maps a go-redis error to the storage sentinels. The messages name
// the operation and the profile, never a value; go-redis's own errors name
// at most a server address.
func (a *Adapter) fail(ctx context.Context, op, key string, err error) error {
	msg := "redis: " + op
	if key != "" {
		msg += " " + strconv.Quote(key)
	}
	if cerr := ctx.Err(); cerr != nil {
		// A timeout that the caller's deadline caused is the caller's.
		return driver.Wrap(cerr, msg, cerr)
	}
	switch {
	case errors.Is(err, goredis.ErrClosed):
		return driver.Wrap(driver.ErrClosed, msg, err)
	case errors.Is(err, goredis.Nil):
		return driver.Wrap(driver.ErrNotFound, msg, err)
	case goredis.HasErrorPrefix(err, "WRONGTYPE"):
		// Someone else's non-hash key under our prefix: report, never overwrite.
		return driver.Wrap(driver.ErrCorrupt, msg, err)
	default:
		// Network errors, pool timeouts, LOADING, CLUSTERDOWN, TRYAGAIN,
		// MASTERDOWN, READONLY during a failover, OOM: all may pass.
		return driver.Wrap(driver.ErrUnavailable, msg, err)
	}
}

func newRevision() driver.Revision {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return short)
	return driver.Revision(hex.EncodeToString(b[:]))
}
