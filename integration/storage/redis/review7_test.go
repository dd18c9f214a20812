package redis_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
)

// review 7: a put whose script ran but whose reply was lost is sent again
// by go-redis; by then another client may have read what it wrote and
// written over it (a waiter woken by the write takes the lease within
// milliseconds). The retry must still recognise its own write: answering
// ErrConflict would promise that nothing changed, and a refresher would
// then put a token back that others may have read and spent.
func TestReview7RetriedPutAfterAnotherWriteIsNotAConflict(t *testing.T) {
	direct, err := url.Parse(withQuery(t, redisURL(t), "prefix", uniquePrefix(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	other, err := driver.Open(ctx, direct.String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	u := *direct
	p := newCutProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	a, err := driver.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent()) // loads the script
	if err != nil {
		t.Fatal(err)
	}
	written := make(chan driver.Revision, 1)
	onCut := func() {
		rev, err := other.Put(ctx, "p", []byte(`{"n":3}`), driver.Condition{})
		if err != nil {
			t.Error(err)
		}
		written <- rev
	}
	p.onCut.Store(&onCut)
	p.armed.Store(true)
	_, err = a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(rev))
	if !p.cut.Load() {
		t.Fatal("the proxy did not cut the put's reply")
	}
	if errors.Is(err, driver.ErrConflict) || errors.Is(err, driver.ErrNotApplied) {
		t.Fatalf("a put whose script ran, then written over: %v", err)
	}
	othersRev := <-written
	if _, stored, err := a.Get(ctx, "p"); err != nil || stored != othersRev {
		t.Fatalf("the store holds %s (%v); the later write was %s and must stay", stored, err, othersRev)
	}
}
