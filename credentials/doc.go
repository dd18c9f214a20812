// Package credentials keeps the OAuth 2.0 credentials of one profile in a
// shared storage.Store and hands out access tokens, so that every process
// and replica sharing the store reuses one access token and exactly one of
// them refreshes it per expiry, even when the server rotates refresh tokens
// and revokes the whole grant when a spent one is presented again.
//
// # The refresh protocol
//
//  1. The token held in memory, while valid, is returned without a lock or
//     an allocation (an atomic pointer load and a time comparison).
//  2. Otherwise one goroutine per Credentials refreshes (a flight) and the
//     others wait for it, each bounded by its own context; a caller that
//     gives up does not cancel the flight the others wait for.
//  3. The flight first writes any rotated refresh token a store outage held
//     back (see Durability), then reads the store: a valid token another
//     process stored is adopted.
//  4. A lease held by someone else means a refresh is in progress: the
//     flight waits for the record to change (driver.Watcher, or polling),
//     at most until the lease ends, then reads again.
//  5. Otherwise it takes the lease: a conditional write on the revision it
//     read. Losing that race means someone moved first: read again, with a
//     backoff once conflicts repeat.
//  6. It calls the token endpoint (bounded by RefreshTimeout), writes the
//     new access token and the rotated refresh token with its lease still
//     on the record (bounded by StoreTimeout), clears the lease with a
//     second write once the first is known to have landed, and hands the
//     token out: only once its refresh token is durable, in the store or
//     the recovery journal (see Durability).
//
// Before a token expires a background flight renews it while callers keep
// getting the current one, so callers rarely wait.
//
// # Leases
//
// A lease names its holder and states how long it lasts (storage.Lease).
// Clocks differ between machines, so a waiter does not compare the holder's
// Until with its own clock: it counts the lease from when it first saw it,
// on its own clock, for the longer of the holder's TTL and its own LeaseTTL.
// A holder whose clock runs slow is therefore never overtaken, a replica
// configured with a short lease never cuts a long one (a fleet mid-rollout),
// and a crashed holder costs the others at most one lease. Config checks that
// a lease covers the endpoint call plus the write of its result.
//
// # Lineage
//
// The store refuses any write that would replace a refresh token with
// anything but its successor from the server or an explicit new grant (see
// storage.Lineage). Every writer goes through that rule: this package's
// refresh and its delayed writes, Profiles.Add, Exchange, ExchangeDevice,
// Revoke, and the resolver's and CLI's seeding. So a write that lands late (its reply was
// lost, its process was partitioned while another replica refreshed again,
// its journal entry was replayed after the store moved on) is dropped as
// superseded instead of putting a spent token back.
//
// # Durability
//
// A token is handed out only once the refresh token it came with is
// durable: in the store, or in the recovery journal, a directory of 0600
// files (Config.JournalDir) that the next Credentials of the same store and
// profile on the machine replays before it refreshes (the processes of a
// machine share it; on Unix each entry's writer and replayers write it
// under the entry's file lock and read it afresh, so that they agree on
// whether a write of it may have landed). While the store is
// down a rotated token is retried in the background and by every flight;
// Flush writes it on demand and Close reports, as an *UnpersistedError,
// one it could not write and where it is kept.
//
// The refreshed record is written with the refresher's lease still on it,
// and a second write clears the lease once the first is known to have
// landed. Other replicas adopt the new token at once (a lease keeps them
// from refreshing, not from reading), but none refreshes past it while the
// lease lasts, not even a forced refresh or a replica whose clock runs
// ahead. That is what makes a lost profile safe to restore: a store that
// loses it (a cache evicts it, a server restarts empty) gets it back from
// the refresher (or from its journal entry, replayed on the same machine)
// even after a write whose reply was lost, while its lease lasts; later
// only if no failed write of it may have landed (storage.ErrNotApplied). Otherwise another replica may have refreshed
// past it, and putting it back could hand out a spent token: it stays in
// the journal, and the error names the entry for an operator to restore
// with init --force if no other replica refreshed since.
//
// Not covered: a store that loses a profile forgets the seeds it held, so
// a replica restarted with a spent seed refresh token in its environment
// puts it back; with an evicting store, do not keep a rotating refresh
// token in the environment.
//
// One loss no client can prevent: a process killed, or a reply lost, after
// the server rotated the refresh token and before the client received it.
// A failed call may have reached the server, so the retry presents the same
// token: servers with a reuse grace period accept it and the grant goes on;
// without one the next refresh gets invalid_grant, reported once as
// ErrReauthRequired.
//
// # Closing
//
// Whoever opens a Store closes it, after everything that uses it: nothing
// in this module closes a Store it was handed. Credentials.Close and
// Profiles.Close stop their own work (flights, delayed writes, telemetry)
// and leave Config.Store open, so that one store may serve a Profiles, a
// Credentials of another configuration and the app's own reads at once,
// and be closed exactly once by its owner:
//
//	st, err := storage.Open(ctx, url)
//	...
//	defer st.Close()
//	profiles, err := credentials.NewProfiles(credentials.Config{Store: st})
//	...
//	defer profiles.Close() // runs first: its last writes reach the open store
//
// Defer the Store's Close before the Profiles' (or Credentials'), so that
// it runs after: Close gives a rotated refresh token the store has not
// taken yet one last write. The same rule holds for resolver.Credentials,
// pancloud.Open and the agent.
//
// # Observability
//
// Credentials records OpenTelemetry metrics and spans through
// Config.MeterProvider and Config.TracerProvider (the otel globals by
// default, which record nothing until an SDK is installed); no exporter is
// a dependency. Attributes are bounded: the profile name
// (tokencache.profile) only with Config.ProfileAttribute.
//
//   - tokencache.token.requests ({request}, counter): Token, Refresh and
//     Rejected calls by tokencache.result: memory, adopted (another
//     process had refreshed), waited (after another process's lease),
//     refreshed (here), failed. The results add up to the calls made.
//   - tokencache.refresh.duration (s): flights by tokencache.result and
//     tokencache.refresh.trigger (expired, renew_ahead, forced).
//   - tokencache.token_endpoint.request.duration (s): each endpoint call,
//     with the HTTP client attributes http.request.method, server.address,
//     server.port, http.response.status_code, error.type, and
//     tokencache.oauth.error (an RFC 6749 code, or "other").
//   - tokencache.lease.wait.duration (s), tokencache.lease.takeovers.
//   - tokencache.refresh_token.unpersisted (gauge): rotated refresh tokens
//     the store has not taken yet; tokencache.journal.replays by
//     tokencache.outcome.
//   - tokencache.renewals (flights started ahead of expiry) and
//     tokencache.hold_offs by tokencache.reason (failure, retry_after).
//   - db.client.operation.duration (s), from storage.Store: every store
//     call by db.system.name, db.operation.name and
//     tokencache.store.result (ok, not_found, conflict, error).
//
// A flight is a span, tokencache.refresh, with children
// tokencache.store.read, tokencache.lease.take, tokencache.token_endpoint
// (its context reaches the HTTP client, so an instrumented client's span
// nests under it) and tokencache.write_back, and the events
// tokencache.lease.wait, tokencache.adopt and tokencache.lease.takeover.
// Errors are recorded by type with their message, in which no token or
// client secret appears.
//
// The cached path records nothing through the API: a hit costs one atomic
// add on a counter sharded by goroutine, which an observable counter
// reports.
//
// Expiry comes from expires_in, or the JWT exp claim when the token is a
// JWT (decoded without verification), less Skew, which is capped at a
// quarter of the lifetime of tokens shorter than it.
//
// # Grants and flavors
//
// Step 6 calls the refresh-token grant of RFC 6749 by default. Two hooks
// change what is called, and nothing else: the protocol around them is the
// same. A Grant (Config.Grant) obtains tokens some other way (client
// credentials, a password, a vendor's redemption service) and needs no
// stored profile to start from. A Flavor, named by a record's Flavor field
// and registered with RegisterFlavor, is a vendor's dialect of the token
// endpoint, used for the refresh, Exchange and Revoke of its profiles.
// DoTokenRequest and DoRevocation read their answers as the built-in
// endpoint does, into an *EndpointError when they are not a success.
//
// Two token types, one per side of the store. Tokens is what a Grant or
// a Flavor's endpoint hands in: a plain value holding everything the
// server answered, the refresh token included, for the flight to write to
// the store. Token is what Credentials hands out: the access token alone,
// never a refresh token, immutable and shared by every caller until it is
// replaced, with the expiry less the skew already worked out, which is
// what keeps the cached path a pointer load and one comparison.
package credentials
