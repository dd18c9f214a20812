package memcached_test

import (
	"os"
	"testing"

	"github.com/tokencache/tokencache/integration/servers"
)

// The server comes from integration/servers: the one
// TOKENCACHE_TEST_MEMCACHED_ADDR names, or else a container. It is started
// on first use and shared by the whole test binary, since a container per
// test would cost seconds each; TestMain removes it. A server that cannot
// be had fails the test, never skips it.
//
// The suite stores a 1 MiB value, which needs memcached -I 2m or more.

var shared = servers.SharedMemcached()

func memcachedAddr(t testing.TB) string { return shared.Get(t).Addr }

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Terminate()
	os.Exit(code)
}
