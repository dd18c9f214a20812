package driver

import (
	"context"
	"errors"
)

// Sentinel errors. Adapters wrap them (see Wrap) and callers test them with
// errors.Is; the wrapped cause carries the backend's detail. They are
// defined here, where adapters make them, and package storage re-exports
// each under the same name (storage.ErrNotFound is ErrNotFound, the same
// value), so that callers test them without importing this package.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict: a conditional write lost; re-read and try again.
	ErrConflict = errors.New("storage: conflict")
	// ErrUnavailable: the backend could not be reached or did not answer;
	// the operation may succeed later. Nothing was lost by the caller.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrCorrupt: stored data cannot be decoded. It is reported, never
	// overwritten, so that an operator can repair it.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrInvalid: the caller passed a bad key, value or URL.
	ErrInvalid = errors.New("storage: invalid argument")
	// ErrReadOnly: the backend refuses writes (read-only file system,
	// permissions, a replica).
	ErrReadOnly = errors.New("storage: read-only")
	// ErrClosed: the adapter or store was used after Close.
	ErrClosed = errors.New("storage: closed")
)

// Wrap returns an error that matches both kind (one of the sentinels) and
// cause with errors.Is and errors.As, and reads "msg: kind: cause". Context
// errors stay context errors: a cancelled call is not an outage.
func Wrap(kind error, msg string, cause error) error {
	if cause == nil {
		return &wrapped{kind: kind, msg: msg}
	}
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		return &wrapped{kind: cause, msg: msg}
	}
	return &wrapped{kind: kind, msg: msg, cause: cause}
}

type wrapped struct {
	kind  error
	msg   string
	cause error
}

func (e *wrapped) Error() string {
	switch {
	case e.cause != nil:
		return e.msg + ": " + e.kind.Error() + ": " + e.cause.Error()
	default:
		return e.msg + ": " + e.kind.Error()
	}
}

func (e *wrapped) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// ErrNotApplied marks a failed write that certainly changed nothing: it
// never reached the backend (the connection was refused, the client is cut
// off) or the backend refused it before applying it. A failed write
// without it may have been applied (a timeout, a lost reply), and another
// process may have read what it wrote. Adapters add it with NotApplied when
// they know; the error keeps its kind (ErrUnavailable, say).
var ErrNotApplied = errors.New("storage: write not applied")

// NotApplied returns err marked as ErrNotApplied (see there); its text is
// err's.
func NotApplied(err error) error {
	if err == nil {
		return nil
	}
	return &notApplied{err}
}

type notApplied struct{ err error }

func (e *notApplied) Error() string   { return e.err.Error() }
func (e *notApplied) Unwrap() []error { return []error{ErrNotApplied, e.err} }
