package mongo_test

import (
	"os"
	"testing"

	"github.com/tokencache/tokencache/integration/servers"
)

// One server for the whole package, started by the first test that needs
// it, so that the tests which need none (URL parsing, a dead server) run
// without Docker and the others share one container.
var ferretDB = servers.SharedFerretDB()

func TestMain(m *testing.M) {
	code := m.Run()
	ferretDB.Terminate()
	os.Exit(code)
}

// ferretDBURL returns the test server's URL or fails t: a missing server
// is a failure, never a skip (see package servers).
func ferretDBURL(t testing.TB) string { return ferretDB.Get(t).URL }
