package driver_test

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

func TestConditionHolds(t *testing.T) {
	for _, c := range []struct {
		cond driver.Condition
		cur  driver.Revision
		want bool
	}{
		{driver.Condition{}, "", true},
		{driver.Condition{}, "r1", true},
		{driver.IfAbsent(), "", true},
		{driver.IfAbsent(), "r1", false},
		{driver.IfMatch("r1"), "r1", true},
		{driver.IfMatch("r1"), "r2", false},
		{driver.IfMatch("r1"), "", false},
		{driver.IfMatch(""), "", true}, // a revision read from a missing key
		{driver.IfMatch(""), "r1", false},
	} {
		if got := c.cond.Holds(c.cur); got != c.want {
			t.Errorf("%v.Holds(%q) = %v, want %v", c.cond, c.cur, got, c.want)
		}
	}
}

// The kinds are one set of values: what an adapter returns matches the
// name a user of storage tests for.
func TestErrorKindsAreStorages(t *testing.T) {
	for _, pair := range [][2]error{
		{driver.ErrNotFound, storage.ErrNotFound}, {driver.ErrConflict, storage.ErrConflict},
		{driver.ErrUnavailable, storage.ErrUnavailable}, {driver.ErrCorrupt, storage.ErrCorrupt},
		{driver.ErrInvalid, storage.ErrInvalid}, {driver.ErrReadOnly, storage.ErrReadOnly},
		{driver.ErrClosed, storage.ErrClosed}, {driver.ErrNotApplied, storage.ErrNotApplied},
	} {
		if !errors.Is(driver.Wrap(pair[0], "op", nil), pair[1]) {
			t.Errorf("%v does not match storage's %v", pair[0], pair[1])
		}
	}
}

func TestWrap(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission}
	err := driver.Wrap(driver.ErrReadOnly, "file: write", cause)
	var pe *fs.PathError
	if !errors.Is(err, driver.ErrReadOnly) || !errors.As(err, &pe) || err.Error() != "file: write: storage: read-only: open /x: permission denied" {
		t.Errorf("Wrap = %q", err)
	}
	// A cancelled call is not an outage.
	err = driver.Wrap(driver.ErrUnavailable, "redis: get", context.Canceled)
	if !errors.Is(err, context.Canceled) || errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("Wrap of a context error = %v, want context.Canceled only", err)
	}
	na := driver.NotApplied(err)
	if !errors.Is(na, driver.ErrNotApplied) || !errors.Is(na, context.Canceled) || na.Error() != err.Error() {
		t.Errorf("NotApplied = %v", na)
	}
	if driver.NotApplied(nil) != nil {
		t.Error("NotApplied(nil) is not nil")
	}
}

// nopAdapter is an adapter type of a package's own, as OpenURL returns.
type nopAdapter struct{ driver.Adapter }

// An opener that returns its package's concrete type registers as is, and
// its nil adapter with an error reaches the caller as a nil Adapter, not
// as a non-nil interface holding a nil pointer.
func TestRegisterConcreteOpener(t *testing.T) {
	driver.Register("drivertest-typed", func(context.Context, *url.URL) (*nopAdapter, error) {
		return nil, driver.Wrap(driver.ErrInvalid, "drivertest-typed: bad URL", nil)
	})
	a, err := driver.Open(context.Background(), "drivertest-typed://h")
	if a != nil || !errors.Is(err, driver.ErrInvalid) {
		t.Fatalf("Open = %#v, %v; want a nil Adapter and ErrInvalid", a, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Register of a nil opener did not panic")
		}
	}()
	driver.Register[*nopAdapter]("drivertest-nil", nil)
}

func TestOpenUnknownSchemeNamesRegistered(t *testing.T) {
	driver.Register("drivertest-open", func(context.Context, *url.URL) (driver.Adapter, error) {
		return nil, driver.Wrap(driver.ErrUnavailable, "drivertest-open: down", nil)
	})
	if _, err := driver.Open(context.Background(), "drivertest-open://h"); !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("Open of a registered scheme = %v, want its opener's error", err)
	}
	_, err := driver.Open(context.Background(), "nosuch://u:topsecret@h")
	if !errors.Is(err, driver.ErrInvalid) || strings.Contains(err.Error(), "topsecret") || !strings.Contains(err.Error(), "drivertest-open") {
		t.Errorf("Open of an unknown scheme = %v, want ErrInvalid naming the registered schemes, without the password", err)
	}
}
