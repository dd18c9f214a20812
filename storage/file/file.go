// Package file is tokencache's embedded default store: the credentials.json
// file that pancloud keeps, in TinyDB's layout, so that pancloud and
// tokencache can share one file.
//
//	{"profiles": {"1": {"profile": "default", "client_id": "...", ...}, "2": {...}}}
//
// Keys are profile names; a profile's value is its document. Put makes the
// document's "profile" member equal the key, gives a new document the
// largest id plus one (as TinyDB does), and leaves every other table,
// document and byte of the file as it was.
//
// Guarantees and why they hold:
//
//   - Writes are atomic and durable: the new file is written to a temporary
//     file in the same directory (created 0600, so the secrets are never
//     readable by others, not even for a moment), fsynced, renamed over the
//     old one, and the directory is fsynced. A reader sees the old file or
//     the new one, never a mix, and a crash leaves one of the two.
//   - Conditional writes are atomic across goroutines and processes: every
//     write holds an exclusive flock on a sidecar file (path + ".lock")
//     while it reads, compares and replaces. The lock cannot live on the
//     credentials file itself, because the rename gives that name a new
//     inode and a lock on the old one would exclude nobody.
//   - Reads take no lock: since every write is a rename, opening the path
//     yields a complete version. (pancloud rewrites the file in place and
//     without a lock; a read that catches it halfway sees invalid JSON, so a
//     read that fails to parse is retried while the file keeps changing.)
//   - Revisions are content hashes of a document; see revisionOf.
//   - A file that does not parse is reported as driver.ErrCorrupt with its
//     path and the byte offset, and is never overwritten: Put fails too.
//   - A file or directory that cannot be written (read-only file system,
//     permissions) makes writes fail with driver.ErrReadOnly; reads work.
//   - A write that finds the sidecar lock held waits at most the lock
//     timeout (DefaultLockTimeout, Options.LockTimeout) and then fails with
//     driver.ErrUnavailable, saying the file is locked and naming the lock
//     file; the caller's ctx can end the wait sooner.
//
// At rest, on disk:
//
//   - The directory is created 0700 and the file is always written 0600,
//     also when it replaces a file another tool created with wider
//     permissions. A file found with access for group or others is changed
//     to 0600 on the first read, before any write, and the logger given
//     in Options.Logger is warned once (what the file held may have been
//     read already; without a logger the Adapter is silent). A directory
//     that others can write is reported the same way but left alone: it
//     may be shared, and only a directory the Adapter creates is its own.
//   - The lock file is opened without following a symbolic link
//     (O_NOFOLLOW), and one that is a link, not a regular file, or owned by
//     another user is refused: writes fail with driver.ErrReadOnly and
//     ErrUnsafeFile, reads go on. Whoever can write the directory could
//     otherwise make us create or lock a file of their choosing.
//   - The file is read only up to a bound (DefaultMaxSize, 64 MiB;
//     Options.MaxSize): a larger one is driver.ErrCorrupt and is not read into
//     memory, and a write that would pass the bound is driver.ErrInvalid.
//
// What it does not protect: the tokens are plain JSON, as pancloud wrote
// them (wrap the adapter with storage/kms to encrypt them), so anyone who
// can read the file as the same user, or as root, reads them. Replaced
// versions of the file are unlinked, not overwritten: their blocks stay on
// the device until reused, and snapshots, backups and editors' copies keep
// their own. The credentials file itself may be a symbolic link the user
// made; it is followed.
//
// Load does not re-parse an unchanged file: see the cache in snapshot.
//
// The Adapter is a driver.Watcher where the system can watch directories
// (inotify on Linux): a process waiting for another's refresh wakes when
// the file is replaced or written, instead of polling. See Wait.
//
// The package needs flock(2) and so builds on Unix only.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/tokencache/tokencache/internal/dirwatch"
	"github.com/tokencache/tokencache/storage/driver"
)

func init() {
	driver.Register("file", OpenURL)
}

// OpenURL returns an Adapter for the file a URL names: file:///abs/path.json
// or file:relative/path.json, with default Options. A URL without a path
// (file:, file://) names no file and is driver.ErrInvalid: where a default
// credentials file lives is a vendor's convention (package pancloud has
// pancloud's). It is the opener the package registers for "file".
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	p, err := pathFromURL(u)
	if err != nil {
		return nil, err
	}
	return New(p, nil)
}

// pathFromURL returns the file a URL names; see OpenURL.
func pathFromURL(u *url.URL) (string, error) {
	if u.Scheme != "file" {
		return "", driver.Wrap(driver.ErrInvalid, fmt.Sprintf("file: URL scheme %q is not file", u.Scheme), nil)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", driver.Wrap(driver.ErrInvalid, fmt.Sprintf("file: URL host %q: only local files are supported", u.Host), nil)
	}
	p := u.Path
	if u.Opaque != "" {
		op, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return "", driver.Wrap(driver.ErrInvalid, "file: bad path in URL", err)
		}
		p = op
	}
	if p == "" {
		return "", driver.Wrap(driver.ErrInvalid, "file: the URL names no file (want file:///path/credentials.json)", nil)
	}
	return p, nil
}

// DefaultMaxSize is the largest credentials file the Adapter reads, unless
// Options.MaxSize says otherwise: a file of many thousands of profiles is a
// few megabytes, so a bigger one is not a credentials file, and reading
// it whole into memory is what a bound is for.
const DefaultMaxSize = 64 << 20

// DefaultLockTimeout is how long a write waits for another process's
// write lock, unless Options.LockTimeout says otherwise. A write holds the
// lock for a read, a compare and an fsynced replace: milliseconds. A
// lock held for seconds belongs to a process that is stuck.
const DefaultLockTimeout = 10 * time.Second

// ErrUnsafeFile is matched, together with driver.ErrReadOnly, by the
// error of a write that refused to use the lock file: one that is a
// symbolic link, not a regular file, or owned by another user. Someone
// else may have planted it; remove it once you know where it came from.
var ErrUnsafeFile = errors.New("file: unsafe lock file")

// Options configures New. nil, and every zero field, mean the default.
type Options struct {
	// Logger receives warnings: a credentials file or directory that
	// others can access (see the package documentation). Without one the
	// Adapter is silent.
	Logger *slog.Logger
	// MaxSize is the largest file the Adapter reads (DefaultMaxSize when
	// <= 0). A larger file is driver.ErrCorrupt, and a write that would
	// make the file larger is driver.ErrInvalid.
	MaxSize int64
	// LockTimeout is how long a write waits for another writer's lock
	// before it fails with driver.ErrUnavailable (DefaultLockTimeout when
	// <= 0). The caller's ctx can end the wait sooner.
	LockTimeout time.Duration
}

// Adapter implements driver.Adapter over one credentials file. Several
// Adapters, in one process or many, may share the file.
type Adapter struct {
	path, lockPath, dir string

	log         *slog.Logger
	maxSize     int64
	lockTimeout time.Duration
	// Each warning is given once per Adapter.
	warnedFile, warnedDir atomic.Bool

	// sem serialises this Adapter's writers, which share lockFile: flock
	// excludes open file descriptions, not goroutines. A channel rather
	// than a mutex so that a waiting writer can give up when its ctx ends.
	sem      chan struct{}
	lockFile *os.File // guarded by sem

	cache  atomic.Pointer[snapshot]
	closed atomic.Bool
	watch  *dirwatch.Watch
}

// New returns an Adapter for the file at path, made absolute. It does no
// I/O: nothing is created until the first write. The Adapter owns nothing
// the caller made; Close releases its lock file and directory watch.
func New(path string, opts *Options) (*Adapter, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, driver.Wrap(driver.ErrInvalid, "file: path", err)
	}
	if opts == nil {
		opts = &Options{}
	}
	a := &Adapter{
		path:        abs,
		lockPath:    abs + ".lock",
		dir:         filepath.Dir(abs),
		log:         opts.Logger,
		maxSize:     DefaultMaxSize,
		lockTimeout: DefaultLockTimeout,
		sem:         make(chan struct{}, 1),
		watch:       dirwatch.New(filepath.Dir(abs), filepath.Base(abs)),
	}
	if opts.MaxSize > 0 {
		a.maxSize = opts.MaxSize
	}
	if opts.LockTimeout > 0 {
		a.lockTimeout = opts.LockTimeout
	}
	return a, nil
}

// Path returns the file the Adapter uses.
func (a *Adapter) Path() string { return a.path }

// snapshot is a parsed version of the file and what identified it on disk.
//
// A hit needs only a stat of the path: same device, inode, size and mtime
// as when the bytes were read. Our own writers never modify a file in place
// (each write is a new inode), but other tools do, and a file system stamps
// mtime with a coarse clock (a tick, or up to 2 s on some file systems), so
// two same-size in-place writes in one tick look alike. As in Git's "racy
// clean" check, a snapshot is trusted on its stat alone only once its mtime
// is older than racyWindow before the moment we last confirmed its content;
// until then a hit re-reads the bytes and compares them, which is still far
// cheaper than parsing. Any change after the confirmation gets a newer
// mtime than the confirmed one and so cannot pass for it.
type snapshot struct {
	*parsed
	id         fileID
	verifiedAt atomic.Int64 // unix nanoseconds, taken before the read that confirmed data
}

type fileID struct {
	exists   bool
	dev, ino uint64
	size     int64
	mtime    int64
}

const racyWindow = 3 * time.Second

func idOf(fi fs.FileInfo) fileID {
	id := fileID{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return id
}

func (s *snapshot) trusted() bool {
	return s.id.mtime < s.verifiedAt.Load()-int64(racyWindow)
}

// load returns the current version of the file, parsed.
func (a *Adapter) load() (*snapshot, error) {
	const maxTorn = 5
	for attempt := 0; ; attempt++ {
		snap, id, err := a.loadOnce()
		if err == nil || !errors.Is(err, driver.ErrCorrupt) || attempt == maxTorn {
			return snap, err
		}
		// A parse error while the file keeps changing is most likely an
		// in-place writer caught halfway; try again once it settles.
		time.Sleep(time.Duration(attempt+1) * time.Millisecond)
		if now, serr := a.stat(); serr != nil || now == id {
			return nil, err
		}
	}
}

func (a *Adapter) stat() (fileID, error) {
	fi, err := os.Stat(a.path)
	if notExist(err) {
		return fileID{}, nil
	}
	if err != nil {
		return fileID{}, a.ioError("stat", err)
	}
	return idOf(fi), nil
}

func (a *Adapter) loadOnce() (*snapshot, fileID, error) {
	cached := a.cache.Load()
	id, err := a.stat()
	if err != nil {
		return nil, id, err
	}
	if cached != nil && cached.id == id && (!id.exists || cached.trusted()) {
		return cached, id, nil
	}
	start := time.Now().UnixNano()
	a.checkDir()
	// Non-blocking, so that a FIFO planted at the path cannot hang us in
	// open(2); anything but a regular file is refused below.
	f, err := os.OpenFile(a.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if notExist(err) {
		p, _ := parse(a.path, nil)
		snap := &snapshot{parsed: p}
		a.cache.Store(snap)
		return snap, fileID{}, nil
	}
	if err != nil {
		return nil, id, a.ioError("open", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, id, a.ioError("stat", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, id, driver.Wrap(driver.ErrCorrupt, fmt.Sprintf("file: %s is not a regular file", a.path), ErrUnsafeFile)
	}
	// Identify what we read by the descriptor, not the path, which a
	// writer may have renamed over since.
	id = idOf(fi)
	a.checkFileMode(f, fi)
	if fi.Size() > a.maxSize {
		return nil, id, a.tooBig()
	}
	// Size the buffer from the descriptor; one byte more lets the read see
	// EOF at once, and the loop copes with a file that grew meanwhile, up
	// to the bound.
	data := make([]byte, 0, fi.Size()+1)
	for {
		if len(data) == cap(data) {
			if int64(len(data)) > a.maxSize {
				return nil, id, a.tooBig()
			}
			data = append(data, 0)[:len(data)]
		}
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, id, a.ioError("read", err)
		}
	}
	if int64(len(data)) > a.maxSize {
		return nil, id, a.tooBig()
	}
	if cached != nil && cached.id == id && string(cached.data) == string(data) {
		cached.verifiedAt.Store(start)
		return cached, id, nil
	}
	p, err := parse(a.path, data)
	if err != nil {
		return nil, id, err
	}
	snap := &snapshot{parsed: p, id: id}
	snap.verifiedAt.Store(start)
	a.cache.Store(snap)
	return snap, id, nil
}

func (a *Adapter) alive(ctx context.Context, op string) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "file: "+op, nil)
	}
	return ctx.Err()
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.alive(ctx, "get"); err != nil {
		return nil, "", err
	}
	snap, err := a.load()
	if err != nil {
		return nil, "", err
	}
	v, rev, ok := snap.get(key)
	if !ok {
		return nil, "", driver.Wrap(driver.ErrNotFound, "file: profile "+strconv.Quote(key), nil)
	}
	// The snapshot is shared: the caller gets its own copy.
	return append([]byte(nil), v...), rev, nil
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.alive(ctx, "list"); err != nil {
		return nil, err
	}
	snap, err := a.load()
	if err != nil {
		return nil, err
	}
	return snap.profilesList(), nil
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if err := a.alive(ctx, "put"); err != nil {
		return "", err
	}
	if !utf8.ValidString(key) {
		return "", driver.Wrap(driver.ErrInvalid, "file: profile name is not UTF-8", nil)
	}
	doc, err := normalize(key, value)
	if err != nil {
		return "", err
	}
	rev := revisionOf(doc)
	err = a.locked(ctx, "put", func(snap *snapshot) ([]byte, error) {
		_, cur, _ := snap.get(key)
		if !cond.Holds(cur) {
			return nil, driver.Wrap(driver.ErrConflict, "file: put "+strconv.Quote(key)+" "+cond.String(), nil)
		}
		return snap.withPut(key, doc), nil
	})
	if err != nil {
		return "", err
	}
	return rev, nil
}

// Delete implements driver.Adapter. It removes every document of the
// profile: a duplicate left behind would take the deleted one's place.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := a.alive(ctx, "delete"); err != nil {
		return err
	}
	return a.locked(ctx, "delete", func(snap *snapshot) ([]byte, error) {
		_, cur, ok := snap.get(key)
		if !cond.Holds(cur) {
			return nil, driver.Wrap(driver.ErrConflict, "file: delete "+strconv.Quote(key)+" "+cond.String(), nil)
		}
		if !ok {
			return nil, nil
		}
		p := snap.parsed
		for {
			i, ok := p.byProfile[key]
			if !ok {
				return p.data, nil
			}
			var err error
			if p, err = parse(a.path, p.withDelete(i)); err != nil {
				return nil, fmt.Errorf("file: internal error deleting a document: %w", err)
			}
		}
	})
}

// locked runs change on the current file under the write lock and writes
// what it returns; nil means nothing to write.
func (a *Adapter) locked(ctx context.Context, op string, change func(*snapshot) ([]byte, error)) error {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-a.sem }()
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "file: "+op, nil)
	}
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer unix.Flock(int(a.lockFile.Fd()), unix.LOCK_UN)
	// Re-read under the lock: what a lock-free Get cached may be stale.
	snap, err := a.load()
	if err != nil {
		return err
	}
	data, err := change(snap)
	if err != nil || data == nil {
		return err
	}
	if int64(len(data)) > a.maxSize {
		return driver.Wrap(driver.ErrInvalid, fmt.Sprintf("file: %s: %s would make the file %d bytes, more than the limit of %d", a.path, op, len(data), a.maxSize), nil)
	}
	// Past this point the write goes through even if ctx ends: stopping
	// halfway would only leave a temporary file behind.
	return a.replace(data)
}

// lock takes the exclusive flock on the sidecar file, opening it first if
// need be. The caller holds sem. It waits for another holder at most
// lockTimeout, and no longer than ctx allows.
func (a *Adapter) lock(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, a.lockTimeout)
	defer cancel()
	for {
		if a.lockFile == nil {
			if err := os.MkdirAll(a.dir, 0o700); err != nil {
				return a.writeError("create directory "+a.dir, err)
			}
			a.checkDir()
			f, err := a.openLockFile()
			if err != nil {
				return err
			}
			a.lockFile = f
		}
		f := a.lockFile
		fd := int(f.Fd())
		if err := flock(lctx, f); err != nil {
			if err == lctx.Err() {
				// flock handed f to the goroutine still waiting on it, and
				// a lock granted to f later must not be mistaken for ours.
				a.lockFile = nil
				if ctxErr := ctx.Err(); ctxErr != nil {
					return driver.Wrap(ctxErr, "file: waiting for the write lock "+a.lockPath, ctxErr)
				}
				return driver.Wrap(driver.ErrUnavailable, fmt.Sprintf(
					"file: %s is locked: another writer has held the write lock %s for more than %v", a.path, a.lockPath, a.lockTimeout), nil)
			}
			return driver.Wrap(driver.ErrUnavailable, "file: lock "+a.lockPath, err)
		}
		// Someone may have removed or replaced the lock file while we
		// waited; a lock on an unlinked inode excludes no one who opens
		// the path now. Lstat: a symbolic link put in its place is not it.
		var held, cur unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Lstat(a.lockPath, &cur) == nil && held.Ino == cur.Ino && held.Dev == cur.Dev {
			return nil
		}
		unix.Flock(fd, unix.LOCK_UN)
		a.lockFile.Close()
		a.lockFile = nil
	}
}

// openLockFile opens (creating if need be) the lock file, and refuses one
// that someone else may have planted. The lock file sits beside the
// credentials, where anyone who can write the directory can put a
// symbolic link: followed, O_CREAT would create (as us, perhaps as root)
// whatever file the link names, and a lock on another user's file lets
// that user block our writes. O_NOFOLLOW makes open fail on a link
// instead; the descriptor's own stat settles the rest, with no window
// between check and use.
func (a *Adapter) openLockFile() (*os.File, error) {
	// O_NONBLOCK: a FIFO or device put there must not hang the open.
	fd, err := unix.Open(a.lockPath, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	switch err {
	case unix.ELOOP:
		return nil, a.unsafeLock("is a symbolic link")
	case unix.EISDIR:
		return nil, a.unsafeLock("is not a regular file")
	}
	if err != nil {
		return nil, a.writeError("open lock file "+a.lockPath, &fs.PathError{Op: "open", Path: a.lockPath, Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, a.ioError("stat lock file "+a.lockPath, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		unix.Close(fd)
		return nil, a.unsafeLock("is not a regular file")
	case int(st.Uid) != os.Geteuid():
		unix.Close(fd)
		return nil, a.unsafeLock(fmt.Sprintf("belongs to user %d, not to us (%d)", st.Uid, os.Geteuid()))
	}
	return os.NewFile(uintptr(fd), a.lockPath), nil
}

func (a *Adapter) unsafeLock(why string) error {
	return driver.Wrap(driver.ErrReadOnly, fmt.Sprintf(
		"file: %s cannot be written: its lock file %s %s; remove it once you know who made it", a.path, a.lockPath, why), ErrUnsafeFile)
}

func (a *Adapter) tooBig() error {
	return driver.Wrap(driver.ErrCorrupt, fmt.Sprintf(
		"file: %s is larger than the limit of %d bytes, so it is not read (the file is left as is; see Options.MaxSize)", a.path, a.maxSize), nil)
}

// checkFileMode makes the credentials file, open as f, private if others
// can read or write it (another tool made it under a wider umask), and
// warns once: what it held may have been read already. A write replaces
// the file with a 0600 one anyway; this covers a store that is only read.
func (a *Adapter) checkFileMode(f *os.File, fi fs.FileInfo) {
	mode := fi.Mode().Perm()
	if mode&0o077 == 0 || !fi.Mode().IsRegular() {
		return
	}
	err := f.Chmod(0o600)
	if a.log == nil || a.warnedFile.Swap(true) {
		return
	}
	if err != nil {
		a.log.Warn("file: credentials file is accessible by others and could not be made private",
			"path", a.path, "mode", mode.String(), "err", err)
		return
	}
	a.log.Warn("file: credentials file was accessible by others; changed to 0600 (rotate the secrets in it if others could read it)",
		"path", a.path, "was", mode.String())
}

// checkDir warns once if others can write the file's directory: they can
// then replace the credentials file, or put files beside it. The
// directory is left alone: it may be shared, and only a directory we
// create is ours to set (0700).
func (a *Adapter) checkDir() {
	if a.log == nil || a.warnedDir.Load() {
		return
	}
	fi, err := os.Stat(a.dir)
	if err != nil || fi.Mode().Perm()&0o022 == 0 {
		return
	}
	if !a.warnedDir.Swap(true) {
		a.log.Warn("file: others can write the credentials file's directory, and so replace the file; make it 0700",
			"dir", a.dir, "mode", fi.Mode().Perm().String())
	}
}

// flock takes an exclusive lock on f, giving up when ctx ends. flock(2)
// cannot be interrupted, so a contended lock under a cancellable ctx is
// waited for in a goroutine. If ctx ends first, that goroutine owns f from
// then on and closes it (releasing any lock it got); the caller must not
// use f again, since a lock belongs to the open file, not to a goroutine.
func flock(ctx context.Context, f *os.File) error {
	fd := int(f.Fd())
	err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err != unix.EWOULDBLOCK {
		return err
	}
	if ctx.Done() == nil {
		return retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX) })
	}
	done := make(chan error, 1)
	var mu sync.Mutex
	abandoned := false
	go func() {
		err := retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX) })
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			f.Close()
			return
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		select {
		case err := <-done:
			return err // got it after all
		default:
			abandoned = true
			return ctx.Err()
		}
	}
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// replace atomically replaces the file with data. The caller holds the lock.
func (a *Adapter) replace(data []byte) (err error) {
	tmp, err := os.CreateTemp(a.dir, "."+filepath.Base(a.path)+".tmp-*") // 0600
	if err != nil {
		return a.writeError("create temporary file", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	start := time.Now().UnixNano()
	if _, err = tmp.Write(data); err != nil {
		return a.writeError("write temporary file", err)
	}
	if err = tmp.Sync(); err != nil {
		return a.writeError("sync temporary file", err)
	}
	if err = os.Rename(tmp.Name(), a.path); err != nil {
		return a.writeError("replace", err)
	}
	// The rename is done: from here on the write has happened, whatever
	// else fails.
	fi, statErr := tmp.Stat()
	tmp.Close()
	if d, derr := os.Open(a.dir); derr == nil {
		// Without this a crash could forget the rename, and with it a
		// rotated refresh token that the server already invalidated.
		d.Sync()
		d.Close()
	}
	// What we wrote is the current file: cache it so the next Get does
	// not read it back.
	if statErr == nil {
		if p, perr := parse(a.path, data); perr == nil {
			snap := &snapshot{parsed: p, id: idOf(fi)}
			snap.verifiedAt.Store(start)
			a.cache.Store(snap)
		}
	}
	return nil
}

// writeError classifies a failed write: no permission or a read-only file
// system is driver.ErrReadOnly, as is a directory that cannot exist
// because a file is in the way; anything else may pass.
func (a *Adapter) writeError(op string, err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOTDIR) {
		return driver.Wrap(driver.ErrReadOnly, fmt.Sprintf("file: %s cannot be written (%s)", a.path, op), err)
	}
	return driver.Wrap(driver.ErrUnavailable, fmt.Sprintf("file: %s: %s", a.path, op), err)
}

// notExist reports whether err says the file is not there. ENOTDIR counts:
// a file in the way of the directory means there can be no file either.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (a *Adapter) ioError(op string, err error) error {
	return driver.Wrap(driver.ErrUnavailable, fmt.Sprintf("file: %s: %s", a.path, op), err)
}

// Wait implements driver.Watcher. It watches the file's directory, since
// every write of ours replaces the file by rename and pancloud's writes
// modify it in place; the temporary and lock files beside it are ignored.
// Where the directory cannot be watched (no inotify, its limits reached,
// no directory yet) it returns errors.ErrUnsupported and the Store polls.
//
// Wait returns only once the key's revision differs from rev, so another
// profile's write or a write that changed nothing does not wake the
// caller; a file that cannot be read counts as changed, for the caller's
// own read to report.
func (a *Adapter) Wait(ctx context.Context, key string, rev driver.Revision) error {
	for {
		if err := a.alive(ctx, "wait"); err != nil {
			return err
		}
		// Subscribe before reading: a write that lands after the read is
		// then sure to close ch.
		ch, err := a.watch.Changed()
		if err != nil {
			return fmt.Errorf("file: wait: %w", err)
		}
		snap, err := a.load()
		if err != nil {
			return nil
		}
		if _, cur, _ := snap.get(key); cur != rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close implements driver.Adapter. It waits for a write in progress, and
// wakes waiters, whose Wait returns driver.ErrClosed.
func (a *Adapter) Close() error {
	a.sem <- struct{}{}
	defer func() { <-a.sem }()
	a.closed.Store(true)
	a.watch.Close()
	if a.lockFile != nil {
		err := a.lockFile.Close()
		a.lockFile = nil
		return err
	}
	return nil
}

// StoreName implements driver.Namer: the file's absolute path, its
// directory's symbolic links resolved, whichever URL or environment
// variable named it.
func (a *Adapter) StoreName() string {
	path := a.path
	if dir, err := filepath.EvalSymlinks(a.dir); err == nil {
		path = filepath.Join(dir, filepath.Base(a.path))
	}
	return (&url.URL{Scheme: "file", Path: path}).String()
}

// WatchKeys implements driver.KeyWatcher: the directory watch that Wait
// uses, shared by every waiter of a Store, with one goroutine that re-reads
// the file once per change (a parse only when it did change) and wakes the
// waiters of the profiles whose revision moved. Where the directory cannot
// be watched it returns errors.ErrUnsupported, like Wait.
func (a *Adapter) WatchKeys(ctx context.Context, changed func(key string)) (driver.KeySubscription, error) {
	if err := a.alive(ctx, "watch"); err != nil {
		return nil, err
	}
	k, err := a.watch.WatchKeys(a.revisions, nil, changed)
	if err != nil {
		return nil, fmt.Errorf("file: watch: %w", err)
	}
	return k, nil
}

// revisions reads the file once for the revisions of keys.
func (a *Adapter) revisions(_ context.Context, keys []string) (map[string]driver.Revision, error) {
	snap, err := a.load()
	if err != nil {
		return nil, err
	}
	revs := make(map[string]driver.Revision, len(keys))
	for _, k := range keys {
		_, revs[k], _ = snap.get(k)
	}
	return revs, nil
}
