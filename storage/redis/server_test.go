package redis_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/integration/servers"
)

// The servers come from integration/servers: the ones its environment
// variables name, or else containers. They are started on first use and
// shared by the whole test binary, since a container per test would cost
// seconds each; TestMain removes them. A server that cannot be had fails
// the test, never skips it.

type sharedServer struct {
	env   string
	start func(context.Context) (*servers.Server, error)

	once sync.Once
	srv  *servers.Server
	url  string
	err  error
}

var (
	single  = &sharedServer{env: servers.EnvRedisURL, start: servers.StartRedis}
	cluster = &sharedServer{env: servers.EnvRedisClusterURL, start: servers.StartRedisCluster}
)

func (s *sharedServer) get(t testing.TB) string {
	t.Helper()
	s.once.Do(func() {
		if v := os.Getenv(s.env); v != "" {
			s.url = v
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		s.srv, s.err = s.start(ctx)
		if s.err == nil {
			s.url = s.srv.URL
		}
	})
	if s.err != nil {
		t.Fatalf("no server (set %s to use an existing one): %v", s.env, s.err)
	}
	return s.url
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range []*sharedServer{single, cluster} {
		if s.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := s.srv.Terminate(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "terminate test server:", err)
			}
			cancel()
		}
	}
	os.Exit(code)
}

// redisURL is "redis://host:port/db".
func redisURL(t testing.TB) string { return single.get(t) }

// redisClusterURL is "redis://host:port?addr=host:port&addr=host:port".
func redisClusterURL(t testing.TB) string { return cluster.get(t) }
