package memcached_test

import (
	"os"
	"testing"
)

// Until integration/servers lands, the tests take the server from the
// environment and fail (never skip) without it. It must run with -I 2m
// for the suite's 1 MiB value.
func memcachedAddr(t testing.TB) string {
	t.Helper()
	a := os.Getenv("TOKENCACHE_TEST_MEMCACHED_ADDR")
	if a == "" {
		t.Fatal("TOKENCACHE_TEST_MEMCACHED_ADDR is not set")
	}
	return a
}
