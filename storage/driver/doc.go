// Package driver is the API for authors of tokencache storage backends;
// package storage is the API for everyone who keeps records in one.
//
// A backend implements Adapter: opaque bytes under string keys, each
// version tagged with an opaque Revision the backend makes, and a
// conditional Put that is atomic in the backend itself. Everything else
// a caller wants (encoding records, validating profile names, retrying a
// read-modify-write on conflict, the lineage rule, telemetry, sharing one
// change subscription among many waiters) is done once, by storage.Store,
// over any Adapter. The split follows database/sql/driver and gocloud.dev's
// driver packages: a small interface for the backend author, a concrete
// type with the conveniences for everyone else.
//
// # What an adapter provides
//
//   - Adapter, the required interface: Get, conditional Put and Delete
//     (Condition, IfAbsent, IfMatch), List, Close.
//   - Optional capabilities the Store looks for with a type assertion:
//     Watcher (wake a waiter when a key changes), KeyWatcher (one
//     subscription for any number of keys, which a Store shares among all
//     its waiters) and Namer (a canonical name for the store, which
//     storage.Open uses instead of the URL).
//   - Errors that wrap this package's sentinels (ErrNotFound, ErrConflict,
//     ErrUnavailable, ...) with Wrap, marked with NotApplied when a failed
//     write certainly changed nothing, and that never contain a value or
//     an unredacted URL (secret.RedactURL).
//   - A URL scheme, registered with Register from the package's init, so
//     that storage.Open can open it from configuration.
//
// The conformance suite in storage/driver/drivertest checks all of it,
// including exactly-one-winner conditional puts under concurrency; every
// adapter runs it unchanged.
//
// # Dependency direction
//
// This package imports nothing of package storage, and storage imports it:
// an adapter moves bytes and never sees a storage.Record, while the Store
// wraps an Adapter. The names users meet that adapters make, Revision and
// the error kinds, are therefore defined here, and storage re-exports them
// as the same type (storage.Revision is an alias) and the same values
// (storage.ErrNotFound is ErrNotFound), so that errors.Is and revisions
// work across the two packages without users importing this one.
//
// # Constructors, options and ownership
//
// Every adapter package in this module follows one rule, modelled on
// gocloud.dev's OpenBucket(ctx, client, opts *Options) and URLOpener:
//
//   - New(client, opts *Options) (*Adapter, error) makes an adapter that
//     works through something the caller made: a go-redis client, a pgx
//     pool, an etcd, DynamoDB, memcached or MongoDB client, a file path. It
//     does no I/O. The caller keeps owning the client: the adapter's Close
//     stops what the adapter started (subscriptions, listeners, watches)
//     and leaves the client open, since it may serve other uses.
//   - Open(ctx, path, opts *Options) (*Adapter, error) makes an adapter
//     that opens its resource itself, with I/O bounded by ctx (a SQLite
//     database, created if need be). The adapter owns what it opened:
//     Close releases it.
//   - OpenURL(ctx, u *url.URL) (*Adapter, error) is the package's URL
//     opener, registered for its schemes from init with
//     Register(scheme, OpenURL). What it makes
//     from the URL (a client, a pool, a connection) belongs to the
//     adapter: Close releases it. It returns the concrete type, so that a
//     program can reach the package's extras (Client, CreateTable, Path).
//   - Options is a struct passed by pointer as the last argument; nil, and
//     every zero field, mean the documented default. There are no
//     functional options. What has no default is a parameter before opts
//     (dynamodb's table, kms's key id), never an Options field.
//   - A nil client, or an option that cannot work (a table name the
//     backend would refuse), is ErrInvalid from the constructor, not a
//     panic or a failure on first use.
//   - A wrapper over another adapter (storage/kms) takes the inner adapter
//     first and owns it, as a storage.Store owns its adapter: Close closes
//     it.
//
// storage/memory, which reaches nothing outside the process and has
// nothing to validate, is the one constructor without an error:
// memory.New(opts *Options) *Adapter.
//
// # The cost of waiting
//
// How a Store waits for a profile to change (storage.Store.Wait) depends
// on what the adapter implements, best first:
//
//   - KeyWatcher: the Store opens one subscription on first use and shares
//     it among all its waiters, whatever the number of profiles; each Wait
//     costs one read of its key and no connection of its own.
//   - Watcher: each Wait asks the adapter, which may subscribe per Wait
//     (Redis on a Cluster with shard channels) or share one connection
//     among its waiters (PostgreSQL's LISTEN).
//   - Neither: each Wait polls at its interval, with jitter.
//
// A wrapper should forward both capabilities when its inner adapter has
// them, and return errors.ErrUnsupported from Wait or WatchKeys when it
// does not, so that the Store falls back.
package driver
