package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// racyAdapter is a fault injector: before the first Put it lets "another
// process" take over the lease, so that the Put after it races a change.
type racyAdapter struct {
	*memory.Adapter
	once sync.Once
}

func (r *racyAdapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (storage.Revision, error) {
	r.once.Do(func() {
		st := storage.NewStore(r.Adapter)
		rec, rev, err := st.Load(ctx, key)
		if err != nil {
			panic(err)
		}
		next := rec.Clone()
		next.Lease = &storage.Lease{Owner: "otherhost/7/ff", Until: time.Now().Add(time.Minute), TTL: storage.Duration(time.Minute)}
		if _, err := st.Replace(ctx, rec, rev, next); err != nil {
			panic(err)
		}
	})
	return r.Adapter.Put(ctx, key, value, cond)
}

func (r *racyAdapter) Close() error { return nil }

var racy = &racyAdapter{Adapter: memory.New(nil)}

func init() {
	driver.Register("leaserace", func(context.Context, *url.URL) (driver.Adapter, error) { return racy, nil })
}

// TestLeaseClearRefusesChangedLease (issue 13, 4): "lease clear" removes
// the lease it read, never one that replaced it meanwhile (a live
// refresher's): it exits 11 and the new lease stays.
func TestLeaseClearRefusesChangedLease(t *testing.T) {
	ctx := context.Background()
	st := storage.NewStore(racy.Adapter)
	if _, err := st.Replace(ctx, nil, "", &storage.Record{Profile: "default", ClientID: "c",
		Lease: &storage.Lease{Owner: "deadhost/4242/00", Until: time.Now().Add(time.Minute), TTL: storage.Duration(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(ctx, []string{"--store", "leaserace://x", "lease", "clear"}, testEnv(nil, &out, &errb))
	if code != exitConflict || !strings.Contains(errb.String(), "the lease changed meanwhile") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	rec, _, err := st.Load(ctx, "default")
	if err != nil || rec.Lease == nil || rec.Lease.Owner != "otherhost/7/ff" {
		t.Errorf("the new holder's lease is gone: %+v %v", rec, err)
	}
}
