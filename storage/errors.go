package storage

import (
	"errors"

	"github.com/tokencache/tokencache/storage/driver"
)

// Errors callers test with errors.Is. The kinds adapters report are
// defined in storage/driver, where adapters make them, and are the same
// values here: errors.Is(err, storage.ErrNotFound) holds for an adapter's
// driver.ErrNotFound. ErrLineage and ErrAbort are the Store's own.
var (
	// ErrNotFound: the profile does not exist.
	ErrNotFound = driver.ErrNotFound
	// ErrConflict: a conditional write lost; re-read and try again.
	ErrConflict = driver.ErrConflict
	// ErrUnavailable: the backend could not be reached or did not answer;
	// the operation may succeed later. Nothing was lost by the caller.
	ErrUnavailable = driver.ErrUnavailable
	// ErrCorrupt: stored data cannot be decoded. It is reported, never
	// overwritten, so that an operator can repair it.
	ErrCorrupt = driver.ErrCorrupt
	// ErrInvalid: the caller passed a bad profile name, record or URL.
	ErrInvalid = driver.ErrInvalid
	// ErrReadOnly: the backend refuses writes (read-only file system,
	// permissions, a replica).
	ErrReadOnly = driver.ErrReadOnly
	// ErrClosed: the store was used after Close.
	ErrClosed = driver.ErrClosed
	// ErrNotApplied marks a failed write that certainly changed nothing
	// (it never reached the backend, or the backend refused it before
	// applying it); the error keeps its kind (ErrUnavailable, say). A
	// failed write without it may have been applied, and another process
	// may have read what it wrote.
	ErrNotApplied = driver.ErrNotApplied
)

// ErrAbort may be returned by an Update function to stop without writing;
// Update then returns it (wrapped errors pass through unchanged too).
var ErrAbort = errors.New("storage: update aborted")
