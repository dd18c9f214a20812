package mongo_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/integration/servers"
)

// One server for the whole package, started by the first test that needs
// it, so that the tests which need none (URL parsing, a dead server) run
// without Docker and the others share one container.
var (
	serverOnce sync.Once
	server     *servers.Server
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		server.Terminate(ctx)
		cancel()
	}
	os.Exit(code)
}

// ferretDBURL returns the test server's URL or fails t: a missing server
// is a failure, never a skip (see package servers).
func ferretDBURL(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		if os.Getenv(servers.EnvMongoURI) != "" {
			server = servers.FerretDB(t) // external: nothing to clean up
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		server, serverErr = servers.StartFerretDB(ctx)
	})
	if serverErr != nil {
		t.Fatalf("FerretDB (set %s to use an existing server): %v", servers.EnvMongoURI, serverErr)
	}
	if server == nil {
		t.Fatal("FerretDB: no server")
	}
	return server.URL
}
