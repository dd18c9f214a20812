package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// unreadable fails every read, as a store that is down does.
type unreadable struct{ driver.Adapter }

func (unreadable) Get(context.Context, string) ([]byte, storage.Revision, error) {
	return nil, "", driver.Wrap(storage.ErrUnavailable, "get", errors.New("connection refused"))
}

// An Update that cannot read writes nothing, and says so: a refresher that
// tracks whether a write of its refresh token may have landed must not
// count it (see ErrNotApplied).
func TestUpdateThatCannotReadIsNotApplied(t *testing.T) {
	st := storage.NewStore(unreadable{memory.New(nil)})
	_, _, err := st.Update(context.Background(), "p", func(r *storage.Record) error { return nil })
	if !errors.Is(err, storage.ErrUnavailable) || !errors.Is(err, storage.ErrNotApplied) {
		t.Fatalf("Update over a failing read: %v; want ErrUnavailable marked ErrNotApplied", err)
	}
}
