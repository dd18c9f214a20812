package servers

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// startTimeout bounds a helper's start, including a cold build of a Go
// server's binary and image (about two minutes for FerretDB on two cores).
const startTimeout = 10 * time.Minute

// Redis returns a single Redis server for t: the one named by
// TOKENCACHE_TEST_REDIS_URL, or else a container from StartRedis that is
// terminated when t ends. It fails t when neither can be had.
func Redis(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "redis", redisFromEnv, StartRedis)
}

// RedisCluster returns a Redis cluster for t: the one named by
// TOKENCACHE_TEST_REDIS_CLUSTER_URL, or else three containers from
// StartRedisCluster that are terminated when t ends. It fails t when neither
// can be had.
func RedisCluster(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "redis cluster", redisClusterFromEnv, StartRedisCluster)
}

// RedisSentinel returns a Sentinel-managed Redis for t: the group named by
// TOKENCACHE_TEST_REDIS_SENTINEL_URL, or else a master and three Sentinels
// from StartRedisSentinel that are terminated when t ends. It fails t when
// neither can be had.
func RedisSentinel(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "redis sentinel", redisSentinelFromEnv, StartRedisSentinel)
}

// Memcached returns a memcached for t: the one at
// TOKENCACHE_TEST_MEMCACHED_ADDR, or else a container from StartMemcached
// that is terminated when t ends. It fails t when neither can be had.
func Memcached(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "memcached", memcachedFromEnv, StartMemcached)
}

// FerretDB returns a MongoDB wire protocol server for t: the one at
// TOKENCACHE_TEST_MONGO_URI, or else a container from StartFerretDB that is
// terminated when t ends. It fails t when neither can be had.
func FerretDB(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "ferretdb", mongoFromEnv, StartFerretDB)
}

// LocalKMS returns a KMS endpoint for t: the one at
// TOKENCACHE_TEST_KMS_ENDPOINT, or else a container from StartLocalKMS that
// is terminated when t ends. It fails t when neither can be had.
func LocalKMS(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "local-kms", kmsFromEnv, StartLocalKMS)
}

// SkipShort skips t under "go test -short": the run a contributor makes
// without Docker or root, which tests everything that needs no server.
// CI never passes -short, so there a server that cannot start still fails
// its test. Every helper here calls it; a test that starts a server of its
// own with a Start function calls it first.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a server: skipped under go test -short (CI runs without -short)")
	}
}

// forTest is the shared body of the helpers. It fails rather than skips: a
// suite that skips when Docker is missing passes in CI while testing nothing.
func forTest(t testing.TB, name string, fromEnv func() (*Server, error), start func(context.Context) (*Server, error)) *Server {
	t.Helper()
	SkipShort(t)
	began := time.Now()
	s, err := acquire(fromEnv, start)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if s.External() {
		return s
	}
	shown := s.URL
	if u, err := url.Parse(shown); err == nil {
		shown = u.Redacted() // StartPostgres's URL holds a password
	}
	t.Logf("%s: %s started in %s", name, shown, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Terminate(ctx); err != nil {
			t.Errorf("terminate %s: %v", name, err)
		}
	})
	return s
}

func getenv(name string) string { return strings.TrimSpace(os.Getenv(name)) }

// envError reports a malformed environment variable without printing a
// password it may hold.
func envError(name, value, want string) error {
	if u, err := url.Parse(value); err == nil {
		value = u.Redacted()
	}
	return fmt.Errorf("%s=%q: %s", name, value, want)
}
