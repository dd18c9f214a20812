package memcached_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/integration/servers"
)

// The server comes from integration/servers: the one
// TOKENCACHE_TEST_MEMCACHED_ADDR names, or else a container. It is started
// on first use and shared by the whole test binary, since a container per
// test would cost seconds each; TestMain removes it. A server that cannot
// be had fails the test, never skips it.
//
// The suite stores a 1 MiB value, which needs memcached -I 2m or more.

var (
	once sync.Once
	srv  *servers.Server
	addr string
	err  error
)

func memcachedAddr(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if v := os.Getenv(servers.EnvMemcachedAddr); v != "" {
			addr = v
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		srv, err = servers.StartMemcached(ctx)
		if err == nil {
			addr = srv.Addr
		}
	})
	if err != nil {
		t.Fatalf("no memcached (set %s to use an existing one): %v", servers.EnvMemcachedAddr, err)
	}
	return addr
}

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := srv.Terminate(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "terminate test server:", err)
		}
		cancel()
	}
	os.Exit(code)
}
