// Package storage is where tokencache keeps its records: one Record per
// profile, in a backend that may be shared by many processes and machines.
//
// Store is the portable type callers use. It encodes Records, validates
// profile names, retries read-modify-write cycles on conflict (Update) and
// enforces the lineage rule on every write. Open picks the backend from a
// URL:
//
//	st, err := storage.Open(ctx, "sqlite:///var/lib/app/tokens.db")
//
// The scheme's adapter package must be imported, as _ will do (storage/file,
// storage/sqlite, storage/redis, ...). A program that builds its own client
// (a go-redis client, a pgx pool) makes the adapter with the package's
// constructor and hands it to NewStore.
//
// # Two packages: storage and storage/driver
//
// This package is the API for users of a store. What only the authors of
// a backend need (the Adapter interface and its optional capabilities,
// write conditions, the URL scheme registry, the helpers adapters make
// their errors with, and the conformance suite drivertest) lives in
// storage/driver, as database/sql/driver does for database/sql and
// gocloud.dev's driver packages do for theirs.
//
// The dependency runs one way: storage imports storage/driver, and
// storage/driver imports nothing of storage. An adapter moves opaque bytes
// under a Revision and never sees a Record, so the driver side needs
// nothing from here; the Store, which does, wraps a driver.Adapter. The two
// names callers meet that adapters make, Revision and the error kinds, are
// therefore defined in storage/driver and are the same type and values
// here: storage.Revision is an alias of driver.Revision, and
// storage.ErrNotFound is driver.ErrNotFound, so errors.Is holds across the
// two.
//
// # Lineage
//
// Store enforces the lineage rule on every write it makes: a stored
// refresh token is replaced only by its successor from the server (Rotate)
// or by an explicit new grant (Grant, or a Seed the profile has never held);
// anything else fails with ErrLineage and writes nothing. See Lineage.
//
// # The cost of waiting
//
// A process waits on the store (Store.Wait) while another one refreshes a
// profile, and a multi-tenant process may wait on many profiles at once.
// What a Wait costs depends on the backend, best first:
//
//   - One shared subscription per Store (an adapter that implements
//     driver.KeyWatcher): each Wait costs one read of its key (after
//     joining, so that no change slips between the caller's read and the
//     wait) and no connection of its own, whatever the number of profiles.
//     Redis: one pattern subscription, which hears every write under the
//     prefix, one message each. File and SQLite: one directory watch and
//     one goroutine, which reads the watched keys' revisions once per
//     change (SQLite: one point query per watched key, repeated at a few
//     settle delays after each commit), however many wait on them.
//   - A subscription per Wait (driver.Watcher): Redis on a Cluster with
//     shard channels takes a connection per Wait, to the key's shard.
//     PostgreSQL's already shares one LISTEN connection per adapter among
//     its waiters.
//   - Neither: each Wait polls at its interval, with jitter.
//
// storage/kms forwards both. A wrapper that forwards driver.Watcher but
// not driver.KeyWatcher (the fault-injecting test adapter) gets the
// per-Wait cost.
package storage

import "github.com/tokencache/tokencache/storage/driver"

// Revision identifies one version of a stored record; Load returns it and
// Replace and Wait take it back. It is opaque. It is driver.Revision, since
// adapters make it (see the package documentation).
type Revision = driver.Revision
