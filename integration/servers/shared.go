package servers

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Shared is a server started on first use and shared by every test of a
// test binary, for packages whose tests each need a server but not their
// own: a container per test would cost seconds each. Like the per-test
// helpers it uses the server named by its environment variable when that is
// set, and fails, never skips, a test when the server cannot be had.
//
//	var redisServer = servers.SharedRedis()
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		redisServer.Terminate()
//		os.Exit(code)
//	}
type Shared struct {
	name    string
	fromEnv func() (*Server, error)
	start   func(context.Context) (*Server, error)

	once sync.Once
	srv  *Server
	err  error
}

// SharedRedis is a shared StartRedis, or TOKENCACHE_TEST_REDIS_URL's server.
func SharedRedis() *Shared { return &Shared{name: "redis", fromEnv: redisFromEnv, start: StartRedis} }

// SharedRedisCluster is a shared StartRedisCluster, or
// TOKENCACHE_TEST_REDIS_CLUSTER_URL's cluster.
func SharedRedisCluster() *Shared {
	return &Shared{name: "redis cluster", fromEnv: redisClusterFromEnv, start: StartRedisCluster}
}

// SharedRedisSentinel is a shared StartRedisSentinel, or
// TOKENCACHE_TEST_REDIS_SENTINEL_URL's Sentinel group.
func SharedRedisSentinel() *Shared {
	return &Shared{name: "redis sentinel", fromEnv: redisSentinelFromEnv, start: StartRedisSentinel}
}

// SharedMemcached is a shared StartMemcached, or TOKENCACHE_TEST_MEMCACHED_ADDR's server.
func SharedMemcached() *Shared {
	return &Shared{name: "memcached", fromEnv: memcachedFromEnv, start: StartMemcached}
}

// SharedFerretDB is a shared StartFerretDB, or TOKENCACHE_TEST_MONGO_URI's server.
func SharedFerretDB() *Shared {
	return &Shared{name: "ferretdb", fromEnv: mongoFromEnv, start: StartFerretDB}
}

// SharedLocalKMS is a shared StartLocalKMS, or TOKENCACHE_TEST_KMS_ENDPOINT's server.
func SharedLocalKMS() *Shared {
	return &Shared{name: "local-kms", fromEnv: kmsFromEnv, start: StartLocalKMS}
}

// Get returns the server, starting it on the first call; it fails t when
// the server cannot be had.
func (s *Shared) Get(t testing.TB) *Server {
	t.Helper()
	SkipShort(t)
	s.once.Do(func() { s.srv, s.err = acquire(s.fromEnv, s.start) })
	if s.err != nil {
		t.Fatalf("%s: %v", s.name, s.err)
	}
	return s.srv
}

// Terminate removes the server's containers, if Get started any.
func (s *Shared) Terminate() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.srv.Terminate(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "terminate %s: %v\n", s.name, err)
	}
}

// acquire returns the server the environment names, or else starts one.
func acquire(fromEnv func() (*Server, error), start func(context.Context) (*Server, error)) (*Server, error) {
	s, err := fromEnv()
	if err != nil || s != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err = start(ctx)
	if err != nil {
		return nil, fmt.Errorf("start (set the environment variable documented in package servers to use an existing one): %w", err)
	}
	return s, nil
}
