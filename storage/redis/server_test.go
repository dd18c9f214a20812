package redis_test

import (
	"os"
	"strings"
	"testing"
)

// Until integration/servers lands, the tests take servers from the
// environment and fail (never skip) without them.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TOKENCACHE_TEST_REDIS_URL")
	if u == "" {
		t.Fatal("TOKENCACHE_TEST_REDIS_URL is not set")
	}
	return u
}

func redisClusterAddrs(t testing.TB) []string {
	t.Helper()
	u := os.Getenv("TOKENCACHE_TEST_REDIS_CLUSTER_ADDRS")
	if u == "" {
		t.Fatal("TOKENCACHE_TEST_REDIS_CLUSTER_ADDRS is not set")
	}
	return strings.Split(u, ",")
}
