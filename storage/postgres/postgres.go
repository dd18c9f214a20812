// Package postgres stores tokencache profiles in PostgreSQL through
// github.com/jackc/pgx/v5 and its connection pool, pgxpool.
//
// # Layout
//
// All profiles live in one table, "tokencache" unless the URL names
// another, in the schema the URL names or else the connection's
// search_path:
//
//	CREATE TABLE IF NOT EXISTS tokencache (
//		key   text  PRIMARY KEY,  -- the profile name
//		value bytea NOT NULL,     -- the encoded record, as written
//		rev   text  NOT NULL      -- its revision
//	)
//
// That statement is the whole migration. The adapter runs it before its
// first operation, so a role that may create tables needs no setup; where
// the application's role may not, an operator runs it once beforehand (the
// adapter then only reads and writes rows). value is bytea rather than
// jsonb because jsonb reorders and deduplicates members, and the contract
// wants a value to read back as written. Table and schema names are quoted,
// so they are case-sensitive, and must match [A-Za-z_][A-Za-z0-9_]{0,62}.
// The schema must exist.
//
// # Guarantees
//
// Every write is one statement, run on its own (autocommit), so the
// compare and the write are atomic in PostgreSQL under its row locks: a
// revision-conditioned write is UPDATE ... WHERE key = $1 AND rev = $2, a
// write to an absent key is INSERT ... ON CONFLICT DO NOTHING, a
// revision-conditioned delete is DELETE ... WHERE key = $1 AND rev = $2,
// and the number of rows the statement touched says whether the condition
// held. Of N concurrent writers on one revision exactly one wins: the
// losers' UPDATEs wait on the winner's row lock, re-check the WHERE clause
// against the committed row (READ COMMITTED's rule for UPDATE) and match
// nothing. Under REPEATABLE READ or SERIALIZABLE as the session's default
// the losers fail with a serialization failure instead, which is the same
// lost race and also driver.ErrConflict. Revisions are 16 random bytes from crypto/rand, made by the
// client, so a profile deleted and created again never comes back with a
// revision someone still holds (no ABA).
//
// A write is durable when PostgreSQL says so: with synchronous_commit on
// (its default) the commit is on disk before Put returns. With
// asynchronous streaming replication a failover can lose acknowledged
// commits, like any asynchronous replica; where rotated refresh tokens live
// only here, use synchronous replication (synchronous_standby_names) or
// accept that a failover may cost a re-authorization. Behind a
// transaction-mode pooler (PgBouncer) the writes work, since each is one
// statement, but LISTEN does not: open such a store with listen=false.
//
// A write that fails without the statement having been sent (no connection
// could be had) or with the server's error that the statement failed (it
// rolled back) matches driver.ErrNotApplied: it certainly changed nothing.
// One whose connection broke after sending it may have committed, and does
// not; nor does one answered with a FATAL, a connection exception (which a
// pooler such as PgBouncer reports when its server connection broke), or
// an internal error, any of which can follow a commit.
//
// List is one SELECT of every key, a consistent snapshot of the table.
//
// # Change notification
//
// The Adapter implements driver.Watcher with LISTEN/NOTIFY. Each write
// and delete calls pg_notify in the same statement (a data-modifying WITH
// feeding a SELECT), on a channel named after the table, with the new
// revision and the profile name as the payload. PostgreSQL delivers a
// notification only when the transaction commits, and never for a write
// that lost its condition. A notification wakes the waiters of its
// profile that hold another revision, so one that arrives late, after a
// waiter has read the revision it announces, does not wake that waiter.
// NOTIFY has a price: PostgreSQL serializes the commits of transactions
// that notify (a database-wide lock held while the notification is
// queued), which a token cache, writing a few times per profile per token
// lifetime, does not feel.
// One connection per Adapter, made on the first Wait and kept until Close,
// listens outside the pool. Wait registers, makes sure the connection is
// listening, and only then re-reads the revision, so a change made between
// the caller's read and the LISTEN is not missed; after a lost connection
// the adapter reconnects and wakes every waiter, which re-read. A
// connection whose peer vanished without a word (a NAT or firewall that
// dropped it, a partition) is found out by a ping after 5 seconds of
// silence that does not answer within 3, and treated as lost. While it
// cannot listen at all, Wait returns an error that matches both
// driver.ErrUnavailable and errors.ErrUnsupported, and storage.Store
// polls instead. Options.NoListen (listen=false in a URL) makes that the
// rule, for servers reached through a pooler that does not keep a session
// (PgBouncer in transaction mode), where LISTEN is accepted and then
// hears nothing.
//
// # URLs
//
// Importing the package registers the "postgres" and "postgresql" schemes
// with storage.Open:
//
//	postgres://[user[:password]@]host[:port][,host2[:port2]...]/dbname[?param=value&...]
//	postgresql://...   the same
//
// Every parameter that pgx.ParseConfig and pgxpool.ParseConfig accept
// works as they document it: sslmode, sslrootcert, sslcert and sslkey for
// TLS (pgx's default sslmode is prefer: TLS when the server offers it,
// with no check of its certificate, and plain text when it does not; the
// rows hold tokens, so across a network use sslmode=verify-full),
// connect_timeout, target_session_attrs, application_name, pool_max_conns,
// pool_min_conns, pool_max_conn_lifetime, pool_max_conn_idle_time,
// pool_health_check_period, and so on; the PG* environment variables and
// ~/.pgpass apply as they do for pgx. Parameters pgx does not know go to
// the server as run-time settings, as in libpq. Two parameters are this
// package's and are removed before the URL reaches pgx:
//
//	table=NAME    the table, DefaultTable when absent
//	schema=NAME   the schema of the table, the search_path's when absent
//	listen=false  no LISTEN: waiters poll (see Change notification)
//
// Opening makes the pool but does not connect; the first call does.
// Passwords never appear in errors; log a URL through secret.RedactURL.
package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokencache/tokencache/storage/driver"
)

// DefaultTable is the table the adapter uses when Options.Table is empty.
const DefaultTable = "tokencache"

// Options configure New. nil, and every zero field, mean the default.
type Options struct {
	// Table names the table, created if missing; DefaultTable when empty.
	Table string
	// Schema names the table's schema; empty leaves it to search_path.
	Schema string
	// NoListen turns LISTEN off: Wait reports errors.ErrUnsupported and
	// storage.Store polls. Writes still notify, for other adapters.
	NoListen bool
}

// Adapter implements driver.Adapter and driver.Watcher over PostgreSQL.
type Adapter struct {
	pool    *pgxpool.Pool
	owned   bool   // Close closes pool
	table   string // quoted, schema-qualified
	channel string // NOTIFY channel, unquoted
	secrets []string

	// The statements, made once from the table name.
	sqlCreate, sqlGet, sqlList                 string
	sqlPutAny, sqlPutAbsent, sqlPutMatch       string
	sqlDeleteAny, sqlDeleteMatch, sqlDeleteHas string

	migrateMu sync.Mutex
	migrated  atomic.Bool

	lis      *listener
	noListen bool

	closed    atomic.Bool
	done      chan struct{} // closed by Close, wakes every Wait
	closeOnce sync.Once
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// New returns an Adapter over pool. The caller keeps ownership of pool:
// Close stops the Adapter but leaves pool open. nil opts means the
// defaults. It fails with driver.ErrInvalid on a bad table or schema name.
func New(pool *pgxpool.Pool, opts *Options) (*Adapter, error) {
	if pool == nil {
		return nil, driver.Wrap(driver.ErrInvalid, "postgres: no pool", nil)
	}
	if opts == nil {
		opts = &Options{}
	}
	return newAdapter(pool, opts)
}

// newAdapter is New for a pool that may still be to come (OpenURL checks
// the options before it makes the pool).
func newAdapter(pool *pgxpool.Pool, opts *Options) (*Adapter, error) {
	table := opts.Table
	if table == "" {
		table = DefaultTable
	}
	if !identifier.MatchString(table) {
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("postgres: table name %q: want [A-Za-z_][A-Za-z0-9_]{0,62}", table), nil)
	}
	if opts.Schema != "" && !identifier.MatchString(opts.Schema) {
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("postgres: schema name %q: want [A-Za-z_][A-Za-z0-9_]{0,62}", opts.Schema), nil)
	}
	ident := pgx.Identifier{table}
	if opts.Schema != "" {
		ident = pgx.Identifier{opts.Schema, table}
	}
	// The channel is named after the table alone, not after how the URL
	// spells its schema: replicas that reach one table through search_path
	// and through schema= must hear each other. Same-named tables in two
	// schemas share it, which costs a spurious wake-up (a waiter re-reads),
	// never a lost one.
	channel := "tokencache." + table
	if len(channel) > 63 {
		// Channel names are identifiers, at most 63 bytes.
		sum := sha256.Sum256([]byte(channel))
		channel = "tokencache." + hex.EncodeToString(sum[:16])
	}
	t := ident.Sanitize()
	// notify wraps a data-modifying statement so that it announces each
	// row it writes as "REV:KEY", REV being the row's new revision, empty
	// after a delete. A key too long for a payload (8000 bytes) is
	// announced as "", which wakes every waiter: a spurious wake-up, never
	// a lost one.
	notify := func(write, rev string) string {
		return "WITH w AS (" + write + " RETURNING key, " + rev + " AS rev) " +
			"SELECT pg_notify('" + channel + "', CASE WHEN octet_length(key) < 4000 THEN rev || ':' || key ELSE '' END) FROM w"
	}
	written := func(write string) string { return notify(write, "rev") }
	deleted := func(write string) string { return notify(write, "''") }
	a := &Adapter{
		pool:    pool,
		table:   t,
		channel: channel,
		done:    make(chan struct{}),

		sqlCreate: "CREATE TABLE IF NOT EXISTS " + t + " (key text PRIMARY KEY, value bytea NOT NULL, rev text NOT NULL)",
		sqlGet:    "SELECT value, rev FROM " + t + " WHERE key = $1",
		sqlList:   "SELECT key FROM " + t,
		sqlPutAny: written("INSERT INTO " + t + " (key, value, rev) VALUES ($1, $2, $3) " +
			"ON CONFLICT (key) DO UPDATE SET value = excluded.value, rev = excluded.rev"),
		sqlPutAbsent:   written("INSERT INTO " + t + " (key, value, rev) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING"),
		sqlPutMatch:    written("UPDATE " + t + " SET value = $2, rev = $3 WHERE key = $1 AND rev = $4"),
		sqlDeleteAny:   deleted("DELETE FROM " + t + " WHERE key = $1"),
		sqlDeleteMatch: deleted("DELETE FROM " + t + " WHERE key = $1 AND rev = $2"),
		sqlDeleteHas:   "SELECT EXISTS (SELECT 1 FROM " + t + " WHERE key = $1)",
	}
	a.lis = newListener(a)
	a.noListen = opts.NoListen
	return a, nil
}

// Pool returns the connection pool the Adapter uses.
func (a *Adapter) Pool() *pgxpool.Pool { return a.pool }

// Migrate runs the migration, CREATE TABLE IF NOT EXISTS, now instead of
// before the first operation. Running it again is harmless.
func (a *Adapter) Migrate(ctx context.Context) error {
	if err := a.alive(ctx, "migrate", ""); err != nil {
		return err
	}
	a.migrated.Store(false)
	return a.migrate(ctx)
}

func (a *Adapter) migrate(ctx context.Context) error {
	if a.migrated.Load() {
		return nil
	}
	a.migrateMu.Lock()
	defer a.migrateMu.Unlock()
	if a.migrated.Load() {
		return nil
	}
	_, err := a.pool.Exec(ctx, a.sqlCreate)
	if isCode(err, "23505", "42P07", "42710") {
		// Two sessions creating the table at once: IF NOT EXISTS checks
		// the catalog before it inserts into it, so the loser fails on the
		// catalog's unique index, or on the table's row type ("type ...
		// already exists", 42710). The table exists now.
		err = nil
	}
	if isCode(err, "25006", "42501") {
		// A standby, a read-only session, or a role that may not create
		// tables: fine when the table is there already.
		var exists bool
		if qerr := a.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", a.table).Scan(&exists); qerr == nil && exists {
			err = nil
		}
	}
	if err != nil {
		return a.fail(ctx, "create table "+a.table, "", err)
	}
	a.migrated.Store(true)
	return nil
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.ready(ctx, "get", key); err != nil {
		return nil, "", err
	}
	var (
		v   []byte
		rev string
	)
	err := a.pool.QueryRow(ctx, a.sqlGet, key).Scan(&v, &rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", driver.Wrap(driver.ErrNotFound, "postgres: get "+strconv.Quote(key), nil)
	}
	if err != nil {
		return nil, "", a.fail(ctx, "get", key, err)
	}
	return v, driver.Revision(rev), nil
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if err := a.ready(ctx, "put", key); err != nil {
		return "", driver.NotApplied(err) // the write was not sent
	}
	if value == nil {
		value = []byte{} // pgx sends a nil slice as NULL
	}
	rev := newRevision()
	var (
		tag pgconn.CommandTag
		err error
	)
	switch cond.Kind {
	case driver.Absent:
		tag, err = a.pool.Exec(ctx, a.sqlPutAbsent, key, value, string(rev))
	case driver.Match:
		tag, err = a.pool.Exec(ctx, a.sqlPutMatch, key, value, string(rev), string(cond.Revision))
	default:
		tag, err = a.pool.Exec(ctx, a.sqlPutAny, key, value, string(rev))
	}
	if err != nil && !(cond.Kind != driver.Unconditional && isCode(err, serializationFailure)) {
		return "", a.writeFail(ctx, "put", key, err)
	}
	// The tag is the final SELECT's: one row per row written. Under
	// REPEATABLE READ or SERIALIZABLE (a server or role default) a
	// concurrent writer's commit is a serialization failure instead of a
	// changed row: for a conditional write, the same lost race.
	if err != nil || tag.RowsAffected() == 0 {
		return "", driver.Wrap(driver.ErrConflict, "postgres: put "+strconv.Quote(key)+" "+cond.String(), nil)
	}
	return rev, nil
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := a.ready(ctx, "delete", key); err != nil {
		return driver.NotApplied(err) // the write was not sent
	}
	conflict := func() error {
		return driver.Wrap(driver.ErrConflict, "postgres: delete "+strconv.Quote(key)+" "+cond.String(), nil)
	}
	switch cond.Kind {
	case driver.Absent:
		// Deleting "if absent" deletes nothing; it only has to tell
		// whether the key exists.
		var has bool
		if err := a.pool.QueryRow(ctx, a.sqlDeleteHas, key).Scan(&has); err != nil {
			return a.fail(ctx, "delete", key, err)
		}
		if has {
			return conflict()
		}
		return nil
	case driver.Match:
		tag, err := a.pool.Exec(ctx, a.sqlDeleteMatch, key, string(cond.Revision))
		if err != nil && !isCode(err, serializationFailure) {
			return a.writeFail(ctx, "delete", key, err)
		}
		if err != nil || tag.RowsAffected() == 0 {
			return conflict()
		}
		return nil
	default:
		if _, err := a.pool.Exec(ctx, a.sqlDeleteAny, key); err != nil {
			return a.writeFail(ctx, "delete", key, err)
		}
		return nil
	}
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.ready(ctx, "list", ""); err != nil {
		return nil, err
	}
	rows, err := a.pool.Query(ctx, a.sqlList)
	if err != nil {
		return nil, a.fail(ctx, "list", "", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, a.fail(ctx, "list", "", err)
	}
	return keys, nil
}

// Close implements driver.Adapter. It stops the listening connection and
// closes the pool only when the Adapter made it (OpenURL, storage.Open);
// see New.
func (a *Adapter) Close() error {
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		close(a.done)
		a.lis.stop()
		if a.owned {
			a.pool.Close()
		}
	})
	return nil
}

func (a *Adapter) alive(ctx context.Context, op, key string) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, opMsg(op, key), nil)
	}
	return ctx.Err()
}

// ready is alive plus the migration, which the first call runs.
func (a *Adapter) ready(ctx context.Context, op, key string) error {
	if err := a.alive(ctx, op, key); err != nil {
		return err
	}
	return a.migrate(ctx)
}

func opMsg(op, key string) string {
	msg := "postgres: " + op
	if key != "" {
		msg += " " + strconv.Quote(key)
	}
	return msg
}

// writeFail is fail for a write, marked driver.ErrNotApplied when the
// write certainly changed nothing: pgx sent nothing (the connection could
// not be had), or the server refused or rolled back the statement (see
// rolledBack). A connection lost after the statement was sent leaves the
// outcome unknown: no mark.
func (a *Adapter) writeFail(ctx context.Context, op, key string, err error) error {
	if pgconn.SafeToRetry(err) || rolledBack(err) {
		return driver.NotApplied(a.fail(ctx, op, key, err))
	}
	return a.fail(ctx, op, key, err)
}

// rolledBack reports whether err is PostgreSQL's answer that a
// one-statement transaction failed, and so rolled back. Not every error
// message says that. A FATAL or PANIC ends the session, and the server
// may send one after the commit (a transaction timeout or a termination
// noticed once the commit's interrupts are released). A connection
// exception (class 08) comes from a pooler as often as from the server:
// PgBouncer answers "server conn crashed?" or "query timeout" (08P01) when
// the server connection broke or timed out after the statement was sent,
// so the statement may have committed. Operator intervention (57, but for
// a cancelled statement, 57014), system errors (58) and internal errors
// (XX, which an error after the commit record is written also reports)
// leave the outcome unknown as well.
func rolledBack(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	severity := pgErr.SeverityUnlocalized
	if severity == "" {
		severity = pgErr.Severity // servers before 9.6 send only this
	}
	if severity != "ERROR" {
		return false
	}
	switch class := pgErr.Code[:min(2, len(pgErr.Code))]; {
	case class == "08", class == "58", class == "XX", len(pgErr.Code) != 5:
		return false
	case class == "57":
		return pgErr.Code == "57014" // query_canceled: the statement stopped
	}
	return true
}

// fail maps a pgx error to the storage sentinels. The messages name the
// operation and the profile, never a value; pgx's own errors name the
// host, user and database, and the password is dropped should one ever
// appear.
func (a *Adapter) fail(ctx context.Context, op, key string, err error) error {
	msg := opMsg(op, key)
	if cerr := ctx.Err(); cerr != nil {
		// A failure that the caller's cancellation or deadline caused is
		// the caller's.
		return driver.Wrap(cerr, msg, cerr)
	}
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, msg, nil)
	}
	if leaks(err.Error(), a.secrets) {
		err = errors.New("(detail withheld: it repeated a secret of the URL)")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "25006": // read_only_sql_transaction: a standby
			return driver.Wrap(driver.ErrReadOnly, msg, err)
		case pgErr.Code == "42501": // insufficient_privilege
			return driver.Wrap(driver.ErrReadOnly, msg, err)
		case pgErr.Code == "42P01": // undefined_table: dropped behind our back
			a.migrated.Store(false)
			return driver.Wrap(driver.ErrUnavailable, msg, err)
		case pgErr.Code == "3F000": // invalid_schema_name
			return driver.Wrap(driver.ErrInvalid, msg+": the schema must exist", err)
		}
	}
	// Connection failures, admin shutdown (57P01) during a restart,
	// cannot_connect_now (57P03) while starting, too many connections,
	// serialization failures, a closed pool: all may pass.
	return driver.Wrap(driver.ErrUnavailable, msg, err)
}

// serializationFailure is SQLSTATE 40001.
const serializationFailure = "40001"

func isCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range codes {
		if pgErr.Code == c {
			return true
		}
	}
	return false
}

// leaks reports whether msg repeats one of secrets.
func leaks(msg string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func newRevision() driver.Revision {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return short)
	return driver.Revision(hex.EncodeToString(b[:]))
}

// secretsOf returns the secrets a URL holds: its password and the values
// of parameters named like one (password, sslpassword).
func secretsOf(u *url.URL) []string {
	var s []string
	if p, ok := u.User.Password(); ok && p != "" {
		s = append(s, p, url.QueryEscape(p), url.PathEscape(p))
	}
	for k, vs := range u.Query() {
		if !strings.Contains(strings.ToLower(k), "password") {
			continue
		}
		for _, v := range vs {
			if v != "" {
				s = append(s, v, url.QueryEscape(v))
			}
		}
	}
	return s
}
