package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/postgres"
)

func openURL(t testing.TB, u string) driver.Adapter {
	t.Helper()
	a, err := driver.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestConformance opens every connection from the URL, so each adapter has
// its own pool and listening connection, as separate processes would.
func TestConformance(t *testing.T) {
	u := storeURL(t)
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, u) })
}

// TestConformanceSharedPool runs the suite with adapters that share one
// pool passed to New, the way an application hands in its own pool.
func TestConformanceSharedPool(t *testing.T) {
	p := plainPool(t)
	table := uniqueTable()
	drivertest.Run(t, func(t *testing.T) driver.Adapter {
		a, err := postgres.New(p, &postgres.Options{Table: table})
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
	// The suite closed adapters; the caller's pool must still work.
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("closing an adapter closed the caller's pool: %v", err)
	}
}

// TestConformanceSchema keeps the table in a schema of its own, named in
// the URL, under the postgresql:// spelling of the scheme.
func TestConformanceSchema(t *testing.T) {
	p := plainPool(t)
	schema := uniqueTable()
	if _, err := p.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	u := strings.Replace(storeURL(t, "schema", schema), "postgres://", "postgresql://", 1)
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, u) })
	var n int
	if err := p.QueryRow(context.Background(),
		"SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("tables in schema %s: %d, %v; want 1", schema, n, err)
	}
}

// TestConformanceSerializable runs the suite in sessions whose default
// isolation is SERIALIZABLE, where a lost race is a serialization failure
// rather than an UPDATE that matches nothing.
func TestConformanceSerializable(t *testing.T) {
	u := storeURL(t, "default_transaction_isolation", "serializable")
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, u) })
}

// TestProcesses: exactly one winner per revision across OS processes, each
// with its own pool.
func TestProcesses(t *testing.T) {
	if os.Getenv("TOKENCACHE_STORAGETEST_CHILD") != "" {
		drivertest.RunProcesses(t, "", 0, 0) // the child's share; the URL comes with it
		return
	}
	drivertest.RunProcesses(t, storeURL(t), 4, 100)
}

// TestConcurrentMigration: adapters that race to create the table on
// first use all succeed, although CREATE TABLE IF NOT EXISTS alone can
// fail on the catalog's unique index when two sessions run it at once.
func TestConcurrentMigration(t *testing.T) {
	u := storeURL(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			a := openURL(t, u)
			defer a.Close()
			_, errs[i] = a.List(ctx)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsHidePassword(t *testing.T) {
	const pw = "hunter2-very-secret"
	for _, raw := range []string{
		"postgres://user:" + pw + "@127.0.0.1:1/db?connect_timeout=1",
		"postgres://user:" + pw + "@127.0.0.1:1/db?pool_max_conns=" + pw,
		"postgres://user:" + pw + "@127.0.0.1:1/db?sslmode=" + pw,
		"postgres://127.0.0.1:1/db?connect_timeout=1&password=" + pw,
		"postgres://user:" + pw + "@127.0.0.1:1/db?connect_timeout=x" + pw,
	} {
		a, err := driver.Open(context.Background(), raw)
		if err != nil {
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("Open error leaks the password: %v", err)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err = a.Get(ctx, "p")
		cancel()
		a.Close()
		if !errors.Is(err, driver.ErrUnavailable) {
			t.Fatalf("Get from a closed port: %v, want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), pw) {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
	// A wrong password against the real server.
	u, _ := url.Parse(serverURL(t))
	u.User = url.UserPassword(u.User.Username(), pw)
	a := openURL(t, u.String())
	defer a.Close()
	_, err := a.List(context.Background())
	if !errors.Is(err, driver.ErrUnavailable) || strings.Contains(err.Error(), pw) {
		t.Fatalf("List with a wrong password: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	a := openURL(t, "postgres://u:p@127.0.0.1:1/db?connect_timeout=1&sslmode=disable")
	defer a.Close()
	ctx := context.Background()
	if _, err := a.Put(ctx, "p", []byte(`{}`), driver.IfAbsent()); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	if _, err := a.List(ctx); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("List: %v, want ErrUnavailable", err)
	}
	// A deadline the caller set stays the caller's error.
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	if _, _, err := a.Get(short, "p"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get after the deadline: %v, want DeadlineExceeded", err)
	}
}

// TestWaitWakesOnDeleteAndClose covers the Watcher paths the suite does
// not: a delete is a change, and Close ends a Wait in progress.
func TestWaitWakesOnDeleteAndClose(t *testing.T) {
	u := storeURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := openURL(t, u), openURL(t, u)
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
	// Missing key, revision "": waits until Close.
	go func() { done <- a.(driver.Watcher).Wait(ctx, "p", "") }()
	time.Sleep(100 * time.Millisecond)
	a.Close()
	if err := <-done; !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("Wait after Close: %v, want ErrClosed", err)
	}
}

// TestWaitAfterListenerKilled: the listening connection is killed by the
// server; the adapter reconnects and a later change still wakes a Wait.
// A change that no connection listened for is caught by the re-read after
// the reconnection.
func TestWaitAfterListenerKilled(t *testing.T) {
	u := storeURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := openURL(t, u), openURL(t, u)
	defer a.Close()
	defer b.Close()
	w := a.(driver.Watcher)
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(ctx, "p", "stale"); err != nil { // starts the listener
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Wait(ctx, "p", rev) }()
	time.Sleep(100 * time.Millisecond)
	// Kill the listener, then change the key while it reconnects.
	p := plainPool(t)
	var killed int
	if err := p.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`).Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminated %d listeners: %v", killed, err)
	}
	rev2, err := b.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(rev))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait across a lost listener: %v", err)
	}
	go func() { done <- w.Wait(ctx, "p", rev2) }()
	time.Sleep(100 * time.Millisecond)
	if _, err := b.Put(ctx, "p", []byte(`{"n":3}`), driver.IfMatch(rev2)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after the reconnection: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait after the reconnection did not wake")
	}
}

// TestNoABA: a profile deleted and created again never repeats a revision,
// so a writer holding the old one loses.
func TestNoABA(t *testing.T) {
	a := openURL(t, storeURL(t))
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

// TestLayout: the table is the one the package documentation shows, and
// values are stored byte for byte.
func TestLayout(t *testing.T) {
	table := uniqueTable()
	u, _ := url.Parse(serverURL(t))
	q := u.Query()
	q.Set("table", table)
	u.RawQuery = q.Encode()
	a := openURL(t, u.String())
	defer a.Close()
	ctx := context.Background()
	val := []byte(`{"b": 1,  "a": 2}`)
	rev, err := a.Put(ctx, "p", val, driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	p := plainPool(t)
	var (
		v []byte
		r string
	)
	if err := p.QueryRow(ctx, "SELECT value, rev FROM "+pgx.Identifier{table}.Sanitize()+" WHERE key = 'p'").Scan(&v, &r); err != nil {
		t.Fatal(err)
	}
	if string(v) != string(val) || r != string(rev) {
		t.Fatalf("row = %q, %q; want %q, %q", v, r, val, rev)
	}
	keys, err := a.List(ctx)
	if err != nil || !slices.Equal(keys, []string{"p"}) {
		t.Fatalf("List = %q, %v", keys, err)
	}
}

// TestReadOnly: a server that refuses writes (a standby, or
// default_transaction_read_only) is driver.ErrReadOnly, and reads work.
func TestReadOnly(t *testing.T) {
	u := storeURL(t)
	rw := openURL(t, u)
	defer rw.Close()
	ctx := context.Background()
	if _, err := rw.Put(ctx, "p", []byte(`{}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	// Unknown parameters are run-time settings for the server, as in libpq.
	ro := openURL(t, u+"&default_transaction_read_only=on")
	defer ro.Close()
	if _, _, err := ro.Get(ctx, "p"); err != nil {
		t.Fatalf("Get from a read-only session: %v", err)
	}
	if _, err := ro.Put(ctx, "p", []byte(`{}`), driver.Condition{}); !errors.Is(err, driver.ErrReadOnly) || !errors.Is(err, driver.ErrNotApplied) {
		t.Fatalf("Put to a read-only session: %v, want ErrReadOnly and ErrNotApplied", err)
	}
}

// TestWaitFiltersByRevision: a notification that announces the revision a
// waiter holds (one that arrives late, after the waiter read it) does not
// wake it; one that announces another revision does.
func TestWaitFiltersByRevision(t *testing.T) {
	table := uniqueTable()
	u, _ := url.Parse(serverURL(t))
	q := u.Query()
	q.Set("table", table)
	u.RawQuery = q.Encode()
	a := openURL(t, u.String())
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.(driver.Watcher).Wait(ctx, "p", rev) }()
	time.Sleep(200 * time.Millisecond)
	p := plainPool(t)
	notify := func(payload string) {
		t.Helper()
		if _, err := p.Exec(ctx, "SELECT pg_notify($1, $2)", "tokencache."+table, payload); err != nil {
			t.Fatal(err)
		}
	}
	notify(string(rev) + ":p")
	notify("otherrev:q")
	select {
	case err := <-done:
		t.Fatalf("Wait woke on a notification of its own revision or another key: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	notify("otherrev:p")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not wake on a notification of another revision")
	}
}

// TestNoListen: with listen=false the adapter reports that it cannot watch,
// the suite's Watch case is skipped for it, and a Store polls instead.
func TestNoListen(t *testing.T) {
	u := storeURL(t, "listen", "false")
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, u) })
	a := openURL(t, u)
	defer a.Close()
	err := a.(driver.Watcher).Wait(context.Background(), "p", "")
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Wait with listen=false: %v, want ErrUnsupported", err)
	}
	// The Store polls: a change by another adapter is seen after a poll.
	st := storage.NewStore(a)
	b := openURL(t, u)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.Wait(ctx, "p", "", 20*time.Millisecond); err != nil {
		t.Fatalf("Store.Wait polls: %v", err)
	}
	pu, _ := url.Parse(u)
	var n int
	if err := plainPool(t).QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = $1",
		"LISTEN "+pgx.Identifier{"tokencache." + pu.Query().Get("table")}.Sanitize()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d LISTEN connections with listen=false (%v)", n, err)
	}
}
