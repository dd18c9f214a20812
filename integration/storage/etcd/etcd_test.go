package etcd_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/etcd"
)

// uniquePrefix isolates a test's keys on the shared cluster, so that List
// sees only them and leftovers of earlier runs do not interfere.
func uniquePrefix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "tctest-" + hex.EncodeToString(b) + "/"
}

// prefixed is the cluster's URL with a fresh prefix as its path.
func prefixed(t testing.TB) string { return etcdURL(t) + uniquePrefix() }

func openAdapter(t testing.TB, u string) driver.Adapter {
	t.Helper()
	a, err := driver.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// plainClient is an etcd client of the test cluster, closed when tb ends:
// for baselines and for setting up what the adapter must cope with.
func plainClient(tb testing.TB) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: cluster.Get(tb).Endpoints, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// TestConformance opens every connection from the URL, so each adapter has
// its own client and connections, as separate processes would.
func TestConformance(t *testing.T) {
	u := prefixed(t)
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openAdapter(t, u) })
}

// TestConformanceSharedClient runs the suite with adapters that share one
// client passed to New, the way an application hands in its own client.
func TestConformanceSharedClient(t *testing.T) {
	c := plainClient(t)
	prefix := uniquePrefix()
	drivertest.Run(t, func(t *testing.T) driver.Adapter {
		return must(etcd.New(c, &etcd.Options{Prefix: prefix}))
	})
	// The suite closed adapters; the caller's client must still work.
	if _, err := c.Get(context.Background(), "x"); err != nil {
		t.Fatalf("closing an adapter closed the caller's client: %v", err)
	}
}

// TestProcesses: exactly-one-winner conditional puts across OS processes.
// The children find the cluster through the environment rather than
// starting one of their own.
func TestProcesses(t *testing.T) {
	if os.Getenv(servers.EnvEtcdEndpoints) == "" {
		t.Setenv(servers.EnvEtcdEndpoints, strings.Join(cluster.Get(t).Endpoints, ","))
	}
	drivertest.RunProcesses(t, prefixed(t), 4, 50)
}

// TestAuth runs a cluster of its own with authentication on (turning it
// on for the shared one would change every other test): the right
// password works, a wrong one is ErrInvalid at open and is not in the
// error, and a user without write permission gets ErrReadOnly.
func TestAuth(t *testing.T) {
	servers.SkipShort(t)
	ctx := context.Background()
	srv, err := servers.StartEtcdCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Terminate(ctx)
	c, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const rootPW, readerPW = "root-pw-0123456789", "reader-pw-0123456789"
	for _, step := range []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", rootPW); return err },
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "reader", readerPW); return err },
		func() error { _, err := c.RoleAdd(ctx, "reader"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "reader", "tokencache/", clientv3.GetPrefixRangeEnd("tokencache/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := c.UserGrantRole(ctx, "reader", "reader"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	hosts := strings.Join(srv.Endpoints, ",")

	root := openAdapter(t, "etcd://root:"+rootPW+"@"+hosts+"/")
	defer root.Close()
	if _, err := root.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatalf("Put as root: %v", err)
	}

	_, err = driver.Open(ctx, "etcd://root:wrong-"+rootPW+"@"+hosts+"/")
	if !errors.Is(err, driver.ErrInvalid) || strings.Contains(err.Error(), rootPW) {
		t.Fatalf("Open with a wrong password: %v, want ErrInvalid without the password", err)
	}

	reader := openAdapter(t, "etcd://reader:"+readerPW+"@"+hosts+"/")
	defer reader.Close()
	if _, _, err := reader.Get(ctx, "p"); err != nil {
		t.Fatalf("Get as reader: %v", err)
	}
	_, err = reader.Put(ctx, "p", []byte(`{"n":2}`), driver.Condition{})
	if !errors.Is(err, driver.ErrReadOnly) || !errors.Is(err, driver.ErrNotApplied) {
		t.Fatalf("Put as reader: %v, want ErrReadOnly and ErrNotApplied", err)
	}
}

// TestUnavailable: a cluster that does not answer is ErrUnavailable within
// the timeout, for every call; the caller's deadline is both that and
// DeadlineExceeded, the caller's cancellation only Canceled.
func TestUnavailable(t *testing.T) {
	a := openAdapter(t, "etcd://127.0.0.1:1,127.0.0.1:2/?timeout=500ms")
	defer a.Close()
	ctx := context.Background()
	began := time.Now()
	_, err := a.Put(ctx, "p", []byte(`{}`), driver.IfAbsent())
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put: %v reads as the caller's deadline", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("Put took %v with a 500ms timeout", d)
	}
	if _, _, err := a.Get(ctx, "p"); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Get: %v, want ErrUnavailable", err)
	}
	if err := a.Delete(ctx, "p", driver.Condition{}); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Delete: %v, want ErrUnavailable", err)
	}
	if _, err := a.List(ctx); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("List: %v, want ErrUnavailable", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := a.Get(short, "p"); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Get with the caller's deadline: %v, want DeadlineExceeded and ErrUnavailable", err)
	}
	cancelled, cancel2 := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, _, err := a.Get(cancelled, "p"); !errors.Is(err, context.Canceled) || errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Get cancelled by the caller: %v, want Canceled only", err)
	}
}

// TestWaitWakesOnDeleteAndCreateAndClose covers the Watcher paths the
// suite does not: a delete is a change, a missing key wakes when created,
// and Close ends a Wait in progress.
func TestWaitWakesOnDeleteAndCreateAndClose(t *testing.T) {
	u := prefixed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := openAdapter(t, u), openAdapter(t, u)
	defer b.Close()
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.(driver.Watcher).Wait(ctx, "p", rev) }()
	time.Sleep(100 * time.Millisecond)
	if err := b.Delete(ctx, "p", driver.IfMatch(rev)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait across a delete: %v", err)
	}
	// Missing key, revision "": wakes when the key is created.
	go func() { done <- a.(driver.Watcher).Wait(ctx, "p", "") }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Wait on a missing key returned before a change: %v", err)
	default:
	}
	if _, err := b.Put(ctx, "p", []byte(`{"n":2}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait for a creation: %v", err)
	}
	// Current revision: waits until Close.
	_, cur, err := a.Get(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- a.(driver.Watcher).Wait(ctx, "p", cur) }()
	time.Sleep(100 * time.Millisecond)
	a.Close()
	if err := <-done; !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("Wait after Close: %v, want ErrClosed", err)
	}
}

// TestWaitReplaysMissedChange: a change made after the caller read
// revision R but before it called Wait is not missed, because the watch
// starts at R+1 in etcd's history.
func TestWaitReplaysMissedChange(t *testing.T) {
	u := prefixed(t)
	a := openAdapter(t, u)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r1, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(r1)); err != nil {
		t.Fatal(err)
	}
	// Unrelated writes move the cluster's revision on, past r1+1.
	for i := range 3 {
		if _, err := a.Put(ctx, "other", []byte(`{}`), driver.Condition{}); err != nil {
			t.Fatal(i, err)
		}
	}
	if err := a.(driver.Watcher).Wait(ctx, "p", r1); err != nil {
		t.Fatalf("Wait on a revision changed before the call: %v", err)
	}
}

// TestNoABA: a profile deleted and created again never repeats a revision,
// so a writer holding the old one loses.
func TestNoABA(t *testing.T) {
	a := openAdapter(t, prefixed(t))
	defer a.Close()
	ctx := context.Background()
	old, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "p", driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(old)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a revision from before the delete: %v, want ErrConflict", err)
	}
}

// TestRevisionIsEtcds: the revision the adapter hands out is the key's
// ModRevision as etcd reports it to any client.
func TestRevisionIsEtcds(t *testing.T) {
	prefix := uniquePrefix()
	c := plainClient(t)
	a := must(etcd.New(c, &etcd.Options{Prefix: prefix}))
	ctx := context.Background()
	rev, err := a.Put(ctx, "p", []byte(`{}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(ctx, prefix+"p")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("plain Get: %v, %d keys", err, len(resp.Kvs))
	}
	if got := resp.Kvs[0].ModRevision; driver.Revision(itoa(got)) != rev {
		t.Fatalf("adapter revision %q, etcd ModRevision %d", rev, got)
	}
}

// TestListPages: List reads more keys than one page holds, and only the
// prefix's.
func TestListPages(t *testing.T) {
	prefix := uniquePrefix()
	c := plainClient(t)
	ctx := context.Background()
	const n = 2500
	var want []string
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < i+100; j++ {
			name := "p" + itoa(int64(j))
			want = append(want, name)
			ops = append(ops, clientv3.OpPut(prefix+name, "{}"))
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// A key just past the prefix's range must not be listed.
	if _, err := c.Put(ctx, strings.TrimSuffix(prefix, "/")+"0", "{}"); err != nil {
		t.Fatal(err)
	}
	got, err := must(etcd.New(c, &etcd.Options{Prefix: prefix})).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List returned %d names, want %d", len(got), len(want))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
