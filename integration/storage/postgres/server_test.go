package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokencache/tokencache/integration/servers"
)

// The server comes from integration/servers, started on first use and
// shared by the whole test binary; TestMain removes it. A server that
// cannot be had fails the test, never skips it.
var server = servers.SharedPostgres()

func TestMain(m *testing.M) {
	code := m.Run()
	server.Terminate()
	os.Exit(code)
}

// serverURL is "postgres://user:password@host:port/db?sslmode=disable".
func serverURL(t testing.TB) string { return server.Get(t).URL }

// uniqueTable isolates a test's rows on a shared server, so that List sees
// only them and leftovers of earlier runs do not interfere.
func uniqueTable() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "tctest_" + hex.EncodeToString(b)
}

// storeURL is the server's URL with a table of the test's own and the
// extra parameters kv.
func storeURL(t testing.TB, kv ...string) string {
	t.Helper()
	u, err := url.Parse(serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("table", uniqueTable())
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// plainPool is a pgx pool of the test server, closed when tb ends: for
// baselines and for setting up what the adapter must cope with.
func plainPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	p, err := pgxpool.New(context.Background(), serverURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}
