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

// A write whose context ended before it was sent certainly changed
// nothing, and says so: the refresh protocol may then still restore the
// record it carried into a store that lost the profile.
func TestPutWithEndedContextIsNotApplied(t *testing.T) {
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := &storage.Record{Profile: "p", ClientID: "c", TokenURL: "https://auth.example/token"}
	rec.Seed("rt-0")
	_, err := st.Replace(ctx, nil, "", rec)
	if !errors.Is(err, storage.ErrNotApplied) || !errors.Is(err, context.Canceled) {
		t.Fatalf("put with an ended context: %v, want ErrNotApplied and context.Canceled", err)
	}
	if _, _, err := st.Load(context.Background(), "p"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the write landed: %v", err)
	}
}
