package redis_test

import (
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"

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

// plainClient is a go-redis client of the test server, closed when tb ends:
// for baselines and for setting up what the adapter must cope with.
func plainClient(tb testing.TB) *goredis.Client {
	tb.Helper()
	opt, err := goredis.ParseURL(redisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	c := goredis.NewClient(opt)
	tb.Cleanup(func() { c.Close() })
	return c
}
