package redis_test

import (
	"os"
	"testing"

	"github.com/tokencache/tokencache/integration/servers"
)

// The servers come from integration/servers, started on first use and
// shared by the whole test binary; TestMain removes them. A server that
// cannot be had fails the test, never skips it.
var (
	single   = servers.SharedRedis()
	cluster  = servers.SharedRedisCluster()
	sentinel = servers.SharedRedisSentinel()
)

func TestMain(m *testing.M) {
	code := m.Run()
	single.Terminate()
	cluster.Terminate()
	sentinel.Terminate()
	os.Exit(code)
}

// redisURL is "redis://host:port/db".
func redisURL(t testing.TB) string { return single.Get(t).URL }

// redisClusterURL is "redis://host:port?addr=host:port&addr=host:port".
func redisClusterURL(t testing.TB) string { return cluster.Get(t).URL }

// redisSentinelURL is "redis://host:port/db?master_name=NAME&addr=host:port".
func redisSentinelURL(t testing.TB) string { return sentinel.Get(t).URL }
