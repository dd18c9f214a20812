// Package sqlite is a storage adapter on an SQLite database file, through
// modernc.org/sqlite (pure Go, no cgo). Its URL is sqlite:///abs/path.db or
// sqlite:relative/path.db, with an optional ?table=name (default "tokencache").
//
// Guarantees and why they hold:
//
//   - Every conditional write is a single SQL statement (INSERT ... ON
//     CONFLICT DO NOTHING for "absent", UPDATE ... WHERE rev = ? for a
//     revision), and SQLite runs each statement atomically under its
//     database write lock, which also covers other processes on the same
//     file. RowsAffected tells whether the condition held, so exactly one
//     of N racing writers wins and no read-then-write transaction (with its
//     read-to-write lock upgrade and the SQLITE_BUSY deadlock that can
//     bring) is ever needed.
//   - The database runs in WAL mode, so readers do not block the writer or
//     each other, and with busy_timeout 5 s, so a writer waits for another
//     process's write instead of failing. Contention that outlasts the
//     timeout is driver.ErrUnavailable. synchronous stays at its FULL
//     default: a commit is on disk when Put returns, because a rotated
//     refresh token lost to a power cut cannot be recovered.
//   - Revisions are random 64-bit numbers (see newRev), so a deleted and
//     re-created key never brings back a revision someone still holds.
//
// At rest, on disk:
//
//   - The database file is created 0600 before SQLite opens it (SQLite
//     gives its -wal and -shm files the database file's mode), in a
//     directory created 0700. A database, -wal, -shm or -journal file that
//     already exists with access for group or others (made by another tool
//     under a wider umask) is changed to 0600 by Open before anything is
//     written, and Options.Logger gets a warning, since what the file held
//     may have been read already. Adapters opened from a URL have no
//     logger and tighten silently.
//   - secure_delete is on: SQLite overwrites the bytes of deleted and
//     replaced rows with zeros instead of leaving them in the page's free
//     space. After a Delete the adapter also runs a TRUNCATE checkpoint,
//     so the deleted record is in neither the database file nor the WAL
//     (best effort: a reader in another process can delay it to the next
//     checkpoint).
//
// What it does not protect: values are stored as the Store gives them,
// in plain text (wrap the adapter with storage/kms to encrypt them), so
// anyone who can read the files as the same user, or as root, reads the
// tokens. A value replaced by Put (an old refresh token) stays in older
// frames of the WAL until SQLite's next checkpoint restarts the WAL, and
// the file system may keep freed blocks, snapshots and backups of any of
// the files; a directory that already exists keeps its permissions.
//
// SQLite has no change notification across processes, so the adapter's
// driver.Watcher watches the files instead: see Wait.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tokencache/tokencache/internal/dirwatch"
	"github.com/tokencache/tokencache/storage/driver"
)

// DefaultTable is the table the adapter uses when the URL names none.
const DefaultTable = "tokencache"

func init() {
	driver.Register("sqlite", OpenURL)
}

// OpenURL opens the database a sqlite: URL names (see the package
// documentation); it is the opener the package registers for "sqlite".
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	path, opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return Open(ctx, path, &opts)
}

// Options configure Open. nil, and every zero field, mean the default.
type Options struct {
	// Table names the table, created if missing; DefaultTable when empty.
	Table string

	// Logger receives warnings about files found readable by others (see
	// the package documentation). Nil, and so for sqlite: URLs, means
	// none: the library is silent unless given a logger.
	Logger *slog.Logger
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func parseURL(u *url.URL) (string, Options, error) {
	if u.Host != "" && u.Host != "localhost" {
		return "", Options{}, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("sqlite: URL host %q: only local files are supported", u.Host), nil)
	}
	p := u.Path
	if u.Opaque != "" {
		op, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return "", Options{}, driver.Wrap(driver.ErrInvalid, "sqlite: bad path in URL", err)
		}
		p = op
	}
	if p == "" {
		return "", Options{}, driver.Wrap(driver.ErrInvalid, "sqlite: URL names no database file", nil)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", Options{}, driver.Wrap(driver.ErrInvalid, "sqlite: bad URL query", err)
	}
	for k := range q {
		if k != "table" {
			return "", Options{}, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("sqlite: unknown URL parameter %q", k), nil)
		}
	}
	return p, Options{Table: q.Get("table")}, nil
}

// Adapter implements driver.Adapter.
type Adapter struct {
	db     *sql.DB
	path   string
	table  string
	log    *slog.Logger
	closed atomic.Bool
	watch  *dirwatch.Watch

	get, rev, insert, update, upsert, del, delRev, exists, list *sql.Stmt
}

// Open opens (creating if need be) the database at path. The Adapter owns
// the database handle it opens: Close closes it.
func Open(ctx context.Context, path string, opts *Options) (*Adapter, error) {
	if opts == nil {
		opts = &Options{}
	}
	table := opts.Table
	if table == "" {
		table = DefaultTable
	}
	if !tableName.MatchString(table) {
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("sqlite: table name %q (letters, digits and _ only)", table), nil)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, driver.Wrap(driver.ErrInvalid, "sqlite: database path", err)
	}
	// The driver splits its DSN at the first '?' and treats "file:" as a
	// URI; an absolute path that contains no '?' is taken literally.
	if strings.ContainsRune(abs, '?') {
		return nil, driver.Wrap(driver.ErrInvalid, "sqlite: database path must not contain '?'", nil)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fileError(abs, "create directory", err)
	}
	// SQLite would create the file with the umask's mode; make it first, so
	// the secrets in it are never readable by others.
	// Symbolic links are refused, for the database and the files SQLite
	// keeps beside it: one planted in a shared directory would have us
	// create, or change the mode of, a file of the planter's choosing.
	for _, p := range []string{abs, abs + "-wal", abs + "-shm", abs + "-journal"} {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, driver.Wrap(driver.ErrReadOnly, fmt.Sprintf("sqlite: %s is a symbolic link; refusing to follow it", p), nil)
		}
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, errROFS) {
		// Maybe readable though not writable: let SQLite decide.
		f, err = os.OpenFile(abs, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, fileError(abs, "open", err)
	}
	f.Close()
	// SQLite gives the files it creates beside the database the
	// database's mode, but leaves files that exist alone: a database made
	// by a tool with a wider umask, and its -wal and -shm, stay readable
	// by others unless we tighten them, before SQLite writes anything.
	for _, p := range []string{abs, abs + "-wal", abs + "-shm", abs + "-journal"} {
		tighten(opts.Logger, p)
	}

	// secure_delete: SQLite overwrites the bytes of deleted and replaced
	// rows with zeros instead of leaving them in free space, where an old
	// refresh token would outlive its record.
	dsn := abs + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=secure_delete(ON)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, mapErr(ctx, "sqlite: open "+abs, err)
	}
	// A commit in WAL mode appends to "-wal"; a checkpoint, or a commit
	// in rollback-journal mode (if WAL could not be set), writes the
	// database file itself.
	base := filepath.Base(abs)
	a := &Adapter{db: db, path: abs, table: table, log: opts.Logger, watch: dirwatch.New(filepath.Dir(abs), base, base+"-wal")}
	if err := a.prepare(ctx, table); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

func (a *Adapter) prepare(ctx context.Context, table string) error {
	t := `"` + table + `"`
	// WITHOUT ROWID: the key is the only lookup, so the primary key index
	// can hold the rows themselves.
	if _, err := a.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+t+` (
		key   TEXT PRIMARY KEY NOT NULL,
		value BLOB NOT NULL,
		rev   INTEGER NOT NULL
	) WITHOUT ROWID`); err != nil {
		return mapErr(ctx, "sqlite: create table "+t+" in "+a.path, err)
	}
	stmts := []struct {
		dst *(*sql.Stmt)
		sql string
	}{
		{&a.get, `SELECT value, rev FROM ` + t + ` WHERE key = ?`},
		{&a.rev, `SELECT rev FROM ` + t + ` WHERE key = ?`},
		{&a.insert, `INSERT INTO ` + t + ` (key, value, rev) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING`},
		{&a.update, `UPDATE ` + t + ` SET value = ?, rev = ? WHERE key = ? AND rev = ?`},
		{&a.upsert, `INSERT INTO ` + t + ` (key, value, rev) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, rev = excluded.rev`},
		{&a.del, `DELETE FROM ` + t + ` WHERE key = ?`},
		{&a.delRev, `DELETE FROM ` + t + ` WHERE key = ? AND rev = ?`},
		{&a.exists, `SELECT 1 FROM ` + t + ` WHERE key = ?`},
		{&a.list, `SELECT key FROM ` + t},
	}
	for _, s := range stmts {
		st, err := a.db.PrepareContext(ctx, s.sql)
		if err != nil {
			return mapErr(ctx, "sqlite: prepare", err)
		}
		*s.dst = st
	}
	return nil
}

// newRev returns a fresh revision. A random 64-bit number, not a per-key
// counter: a counter restarts when a key is deleted and created again, and
// a writer holding a revision from before the delete would then match a
// different value (ABA). A store-wide counter would also do, but costs a
// second row that every write updates; with random revisions two versions
// of one key collide with probability 2^-64, and each write is still one
// statement. math/rand/v2's generator is seeded per process by the
// runtime, so processes do not repeat each other's sequences.
func newRev() int64 { return int64(rand.Uint64()) }

func revString(r int64) driver.Revision {
	return driver.Revision(strconv.FormatUint(uint64(r), 36))
}

func parseRev(r driver.Revision) (int64, bool) {
	u, err := strconv.ParseUint(string(r), 36, 64)
	return int64(u), err == nil
}

func (a *Adapter) alive(ctx context.Context, op string) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "sqlite: "+op, nil)
	}
	return ctx.Err()
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.alive(ctx, "get"); err != nil {
		return nil, "", err
	}
	var v []byte
	var rev int64
	err := a.get.QueryRowContext(ctx, key).Scan(&v, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", driver.Wrap(driver.ErrNotFound, "sqlite: get "+strconv.Quote(key), nil)
	}
	if err != nil {
		return nil, "", a.mapErr(ctx, "get "+strconv.Quote(key), err)
	}
	return v, revString(rev), nil
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if err := a.alive(ctx, "put"); err != nil {
		return "", err
	}
	rev := newRev()
	var res sql.Result
	var err error
	switch cond.Kind {
	case driver.Absent:
		res, err = a.insert.ExecContext(ctx, key, value, rev)
	case driver.Match:
		old, ok := parseRev(cond.Revision)
		if !ok {
			return "", a.conflict("put", key, cond)
		}
		res, err = a.update.ExecContext(ctx, value, rev, key, old)
	default:
		res, err = a.upsert.ExecContext(ctx, key, value, rev)
	}
	if err != nil {
		return "", a.mapErr(ctx, "put "+strconv.Quote(key), err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if err != nil {
			return "", a.mapErr(ctx, "put "+strconv.Quote(key), err)
		}
		return "", a.conflict("put", key, cond)
	}
	return revString(rev), nil
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := a.alive(ctx, "delete"); err != nil {
		return err
	}
	switch cond.Kind {
	case driver.Absent:
		// "Delete if absent" deletes nothing; it only has to fail when the
		// key exists, which one read answers.
		var one int
		err := a.exists.QueryRowContext(ctx, key).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return a.mapErr(ctx, "delete "+strconv.Quote(key), err)
		}
		return a.conflict("delete", key, cond)
	case driver.Match:
		old, ok := parseRev(cond.Revision)
		if !ok {
			return a.conflict("delete", key, cond)
		}
		res, err := a.delRev.ExecContext(ctx, key, old)
		if err != nil {
			return a.mapErr(ctx, "delete "+strconv.Quote(key), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return a.mapErr(ctx, "delete "+strconv.Quote(key), err)
		} else if n != 1 {
			return a.conflict("delete", key, cond)
		}
		a.scrub(ctx)
		return nil
	default:
		res, err := a.del.ExecContext(ctx, key)
		if err != nil {
			return a.mapErr(ctx, "delete "+strconv.Quote(key), err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return nil // nothing was there, nothing to scrub
		}
		a.scrub(ctx)
		return nil
	}
}

// scrub runs after a delete, which secure_delete has already zeroed in
// the page it wrote to the WAL. Earlier frames of the WAL still hold the
// page as it was, the deleted value included, until a checkpoint lets the
// WAL start over; a TRUNCATE checkpoint copies the WAL into the database
// and empties it now. It is best effort: the delete has happened, and a
// reader in another process that keeps the WAL busy only delays the
// scrub to the next checkpoint.
func (a *Adapter) scrub(ctx context.Context) {
	var busy, logFrames, done int
	err := a.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
	if a.log == nil {
		return
	}
	switch {
	case err != nil:
		a.log.WarnContext(ctx, "sqlite: checkpoint after delete failed; the deleted value stays in the WAL until the next one",
			"path", a.path, "err", err)
	case busy != 0:
		a.log.WarnContext(ctx, "sqlite: checkpoint after delete was blocked by a reader; the deleted value stays in the WAL until the next one",
			"path", a.path)
	}
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.alive(ctx, "list"); err != nil {
		return nil, err
	}
	rows, err := a.list.QueryContext(ctx)
	if err != nil {
		return nil, a.mapErr(ctx, "list", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, a.mapErr(ctx, "list", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, a.mapErr(ctx, "list", err)
	}
	return keys, nil
}

// settle is how long Wait keeps looking after the files changed without
// the key's revision changing. SQLite writes a commit's frames to the WAL
// (the events Wait wakes on), fsyncs the WAL, and only then publishes the
// commit to readers in the shared-memory index, which raises no event: a
// reader woken by the write may be early, and no later event would tell it
// the commit has become visible. So after each event Wait reads again at
// doubling intervals, starting small because the fsync is usually quick,
// and stops once the commit must have landed or turned out to be another
// key's.
var settle = func() []time.Duration {
	var ds []time.Duration
	for d := 250 * time.Microsecond; d <= time.Second; d *= 2 {
		ds = append(ds, d)
	}
	return ds
}()

// Wait implements driver.Watcher. It watches the database's directory for
// writes to the database and its WAL, which every commit makes, from any
// process. Where the directory cannot be watched (no inotify, its limits
// reached) it returns errors.ErrUnsupported and the Store polls.
//
// Wait returns only once the key's revision differs from rev, so commits
// to other keys cost a point query each but do not wake the caller; a
// failed query counts as a change, for the caller's own read to report.
func (a *Adapter) Wait(ctx context.Context, key string, rev driver.Revision) error {
	// recheck runs only while settling after an event; step is its place
	// in settle.
	recheck := time.NewTimer(0)
	recheck.Stop()
	defer recheck.Stop()
	step := 0
	for {
		if err := a.alive(ctx, "wait"); err != nil {
			return err
		}
		// Subscribe before reading: a commit that lands after the read is
		// then sure to close ch.
		ch, err := a.watch.Changed()
		if err != nil {
			return fmt.Errorf("sqlite: wait: %w", err)
		}
		cur, err := a.revision(ctx, key)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if a.closed.Load() {
				return driver.Wrap(driver.ErrClosed, "sqlite: wait", nil)
			}
			return nil
		}
		if cur != rev {
			return nil
		}
		select {
		case <-ch:
			step = 0
			recheck.Reset(settle[0])
		case <-recheck.C:
			if step++; step < len(settle) {
				recheck.Reset(settle[step])
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// revision returns key's current revision, "" if there is none.
func (a *Adapter) revision(ctx context.Context, key string) (driver.Revision, error) {
	var rev int64
	err := a.rev.QueryRowContext(ctx, key).Scan(&rev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return revString(rev), nil
}

// Close implements driver.Adapter. Waiters wake and their Wait returns
// driver.ErrClosed.
func (a *Adapter) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	a.watch.Close()
	return a.db.Close()
}

func (a *Adapter) conflict(op, key string, cond driver.Condition) error {
	return driver.Wrap(driver.ErrConflict, "sqlite: "+op+" "+strconv.Quote(key)+" "+cond.String(), nil)
}

func (a *Adapter) mapErr(ctx context.Context, op string, err error) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "sqlite: "+op, nil)
	}
	return mapErr(ctx, "sqlite: "+op+" in "+a.path, err)
}

// mapErr turns a driver error into one matching the storage sentinels.
func mapErr(ctx context.Context, msg string, err error) error {
	// The driver interrupts a statement when ctx ends and reports
	// SQLITE_INTERRUPT; the caller wants ctx's error.
	if ctxErr := ctx.Err(); ctxErr != nil {
		return driver.Wrap(ctxErr, msg, ctxErr)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return driver.Wrap(err, msg, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		// Extended result codes carry the primary code in the low byte.
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return driver.Wrap(driver.ErrUnavailable, msg+" (the database stayed locked by another writer past the busy timeout)", err)
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return driver.Wrap(driver.ErrReadOnly, msg, err)
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return driver.Wrap(driver.ErrCorrupt, msg+" (the database file is damaged or not SQLite; it is left as is)", err)
		}
	}
	if err.Error() == "sql: database is closed" {
		// database/sql does not export this error.
		return driver.Wrap(driver.ErrClosed, msg, nil)
	}
	return driver.Wrap(driver.ErrUnavailable, msg, err)
}

// tighten makes the file at path 0600 if it exists with access for group
// or others, and says so through log (if not nil): whatever it held may
// have been read already. A file we do not own cannot be changed; that
// is a warning too, not a failure, since SQLite may still be able to use
// it and refusing would not make it private.
func tighten(log *slog.Logger, path string) {
	// Lstat and a descriptor opened without following links: the mode
	// changed is that of the file at path, never a link's target.
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err == nil {
		err = f.Chmod(0o600)
		f.Close()
	}
	if log == nil {
		return
	}
	if err != nil {
		log.Warn("sqlite: database file is readable by others and could not be made private",
			"path", path, "mode", fi.Mode().Perm().String(), "err", err)
		return
	}
	log.Warn("sqlite: database file was readable by others; changed to 0600 (rotate the secrets it held if others could read it)",
		"path", path, "was", fi.Mode().Perm().String())
}

var (
	errROFS   error = syscall.EROFS
	errNotDir error = syscall.ENOTDIR
)

// fileError classifies a failure to create the database file or its
// directory.
func fileError(path, op string, err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, errROFS) || errors.Is(err, errNotDir) {
		return driver.Wrap(driver.ErrReadOnly, fmt.Sprintf("sqlite: %s: %s", path, op), err)
	}
	return driver.Wrap(driver.ErrUnavailable, fmt.Sprintf("sqlite: %s: %s", path, op), err)
}

// StoreName implements driver.Namer: the database's absolute path (its
// directory's symbolic links resolved) and table, whichever URL named it.
func (a *Adapter) StoreName() string {
	u := url.URL{Scheme: "sqlite", Path: canonicalPath(a.path)}
	if a.table != DefaultTable {
		u.RawQuery = url.Values{"table": {a.table}}.Encode()
	}
	return u.String()
}

func canonicalPath(path string) string {
	if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		return filepath.Join(dir, filepath.Base(path))
	}
	return path
}

// WatchKeys implements driver.KeyWatcher: the directory watch that Wait
// uses, shared by every waiter of a Store, with one goroutine that after
// each commit (and at the settle delays after it, see settle) queries the
// revisions of the profiles being waited on, one point query each, and
// wakes the waiters of those that moved. Where the directory cannot be
// watched it returns errors.ErrUnsupported, like Wait.
func (a *Adapter) WatchKeys(ctx context.Context, changed func(key string)) (driver.KeySubscription, error) {
	if err := a.alive(ctx, "watch"); err != nil {
		return nil, err
	}
	k, err := a.watch.WatchKeys(a.revisions, settle, changed)
	if err != nil {
		return nil, fmt.Errorf("sqlite: watch: %w", err)
	}
	return k, nil
}

// revisions queries the revisions of keys.
func (a *Adapter) revisions(ctx context.Context, keys []string) (map[string]driver.Revision, error) {
	revs := make(map[string]driver.Revision, len(keys))
	for _, k := range keys {
		rev, err := a.revision(ctx, k)
		if err != nil {
			return nil, err
		}
		revs[k] = rev
	}
	return revs, nil
}
