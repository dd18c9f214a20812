package etcd_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/etcd"
)

// faultyTxn is a gRPC interceptor that breaks the next Txn calls of a
// client, for the ambiguous outcomes no real server produces on demand:
// "lost" sends the request and loses the answer (it applied), "dropped"
// fails it without sending; before, if set, runs first (another writer
// getting in between).
type faultyTxn struct {
	mu     sync.Mutex
	plan   []string // one of "lost", "dropped", "late" per coming Txn
	before func()
	after  func()       // runs after a "lost" request applied, before its answer is lost
	late   func() error // sends a "late" request, before the next Txn
}

func (f *faultyTxn) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if !strings.HasSuffix(method, "/Txn") {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	f.mu.Lock()
	var fault string
	if len(f.plan) > 0 {
		fault, f.plan = f.plan[0], f.plan[1:]
	}
	before, after, late := f.before, f.after, f.late
	f.before, f.after, f.late = nil, nil, nil
	f.mu.Unlock()
	if before != nil {
		before()
	}
	if late != nil {
		if err := late(); err != nil {
			return err
		}
	}
	switch fault {
	case "late":
		// Held up on the way: it arrives after the caller's next attempt
		// has been sent, and applies first.
		f.mu.Lock()
		// Its own context: the caller's attempt has given up on it.
		lctx := context.WithoutCancel(ctx)
		f.late = func() error { return invoker(lctx, method, req, reply, cc, opts...) }
		f.mu.Unlock()
		return status.Error(codes.Unavailable, "injected: request held up")
	case "lost":
		if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
			return err
		}
		if after != nil {
			after()
		}
		return status.Error(codes.Unavailable, "injected: connection lost before the answer")
	case "dropped":
		return status.Error(codes.Unavailable, "injected: connection lost before the request")
	default:
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

func faultyAdapter(t *testing.T, prefix string) (*etcd.Adapter, *faultyTxn) {
	t.Helper()
	f := &faultyTxn{}
	c, err := clientv3.New(clientv3.Config{Endpoints: cluster.Get(t).Endpoints, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(f.intercept)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return must(etcd.New(c, &etcd.Options{Prefix: prefix})), f
}

// version is how many times key was written since it was created.
func version(t *testing.T, c *clientv3.Client, key string) int64 {
	t.Helper()
	resp, err := c.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get %q: %v", key, err)
	}
	return resp.Kvs[0].Version
}

// TestAmbiguousWrites: a write whose answer is lost is found applied by
// reading back, not reported as a failure or a conflict; a write lost
// before it was sent is sent again, once; and one that another writer beat
// meanwhile is a conflict.
func TestAmbiguousWrites(t *testing.T) {
	ctx := context.Background()
	plain := plainClient(t)
	prefix := uniquePrefix()
	a, f := faultyAdapter(t, prefix)

	f.plan = []string{"lost"}
	r1, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatalf("Put if absent, answer lost: %v", err)
	}
	f.plan = []string{"lost"}
	r2, err := a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(r1))
	if err != nil {
		t.Fatalf("Put if match, answer lost: %v", err)
	}
	if v, cur, err := a.Get(ctx, "p"); err != nil || cur != r2 || string(v) != `{"n":2}` {
		t.Fatalf("after lost answers: %s at %q (%v), want n=2 at %q", v, cur, err, r2)
	}

	f.plan = []string{"dropped", "dropped"}
	r3, err := a.Put(ctx, "p", []byte(`{"n":3}`), driver.IfMatch(r2))
	if err != nil {
		t.Fatalf("Put if match, dropped twice: %v", err)
	}
	if got := version(t, plain, prefix+"p"); got != 3 {
		t.Fatalf("key written %d times, want 3: a dropped write was applied twice", got)
	}

	f.plan = []string{"dropped"}
	f.before = func() {
		if _, err := plain.Put(ctx, prefix+"p", `{"n":99}`); err != nil {
			t.Error(err)
		}
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":4}`), driver.IfMatch(r3)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put beaten by another writer while its request was lost: %v, want ErrConflict", err)
	}

	// The same with the other writer's bytes equal to ours: still the
	// other writer's write, and ours lost (review 3: both were told they
	// won).
	_, cur, _ := a.Get(ctx, "p")
	f.plan = []string{"dropped"}
	f.before = func() { plain.Put(ctx, prefix+"p", `{"n":5}`) }
	if _, err := a.Put(ctx, "p", []byte(`{"n":5}`), driver.IfMatch(cur)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put whose bytes another writer stored while its request was lost: %v, want ErrConflict", err)
	}

	// An attempt that applies late makes the next one fail its compare:
	// still ours, found by reading back, and written once.
	_, cur, _ = a.Get(ctx, "p")
	before := version(t, plain, prefix+"p")
	f.plan = []string{"late"}
	r6, err := a.Put(ctx, "p", []byte(`{"n":6}`), driver.IfMatch(cur))
	if err != nil {
		t.Fatalf("Put whose first attempt applied late: %v", err)
	}
	if v, got, _ := a.Get(ctx, "p"); got != r6 || string(v) != `{"n":6}` {
		t.Fatalf("after a late attempt: %s at %q, want n=6 at %q", v, got, r6)
	}
	if got := version(t, plain, prefix+"p"); got != before+1 {
		t.Fatalf("key written %d times by one Put", got-before)
	}

	_, cur, _ = a.Get(ctx, "p")
	// A deletion leaves no id: whether the one found is ours or another
	// writer's cannot be told, and the outcome is reported as unknown.
	f.plan = []string{"lost"}
	if err := a.Delete(ctx, "p", driver.IfMatch(cur)); !errors.Is(err, driver.ErrUnavailable) || errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Delete if match, answer lost: %v, want ErrUnavailable (outcome unknown)", err)
	}
	if _, _, err := a.Get(ctx, "p"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get after the delete: %v", err)
	}

	// A create whose answer was lost and whose key another writer then
	// replaced: ours applied first, but "if absent" names no revision to
	// search history from, so the outcome is unknown, not a conflict.
	f.plan = []string{"lost"}
	f.after = func() {
		if _, err := plain.Put(ctx, prefix+"p", `{"n":"theirs"}`); err != nil {
			t.Error(err)
		}
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":7}`), driver.IfAbsent()); !errors.Is(err, driver.ErrUnavailable) || errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put if absent, answer lost, then overwritten: %v, want ErrUnavailable (outcome unknown)", err)
	}
}

// TestLostAnswerStampedValue: the stamp that identifies writes never
// reaches readers, and values without one (another client's) read as
// they are.
func TestLostAnswerStampedValue(t *testing.T) {
	ctx := context.Background()
	plain := plainClient(t)
	prefix := uniquePrefix()
	a := must(etcd.New(plain, &etcd.Options{Prefix: prefix}))
	if _, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if v, _, err := a.Get(ctx, "p"); err != nil || string(v) != `{"n":1}` {
		t.Fatalf("Get: %q, %v", v, err)
	}
	if _, err := plain.Put(ctx, prefix+"q", `{"plain":true}`); err != nil {
		t.Fatal(err)
	}
	if v, _, err := a.Get(ctx, "q"); err != nil || string(v) != `{"plain":true}` {
		t.Fatalf("Get of an unstamped value: %q, %v", v, err)
	}
}
