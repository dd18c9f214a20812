package redis_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/storage/driver"
)

func burstEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkBurst is credentials' many-profiles scale run
// (credentialstest.Burst) on a Redis server: each replica opens its own
// client from the URL, as a process would, and waits through the
// adapter's one pattern subscription. The same variables as the
// credentials package's BenchmarkBurst shape it:
//
//	cd integration && TOKENCACHE_BURST_PROFILES=10000 TOKENCACHE_BURST_LIFETIME_S=30 go test -run '^$' -bench Burst -benchtime 1x ./storage/redis/
func BenchmarkBurst(b *testing.B) {
	o := credentialstest.BurstOptions{
		Profiles:  burstEnv("TOKENCACHE_BURST_PROFILES", 1000),
		Replicas:  burstEnv("TOKENCACHE_BURST_REPLICAS", 8),
		Lifetime:  time.Duration(burstEnv("TOKENCACHE_BURST_LIFETIME_S", 6)) * time.Second,
		Lifetimes: burstEnv("TOKENCACHE_BURST_LIFETIMES", 3),
	}
	u := withQuery(b, redisURL(b), "prefix", uniquePrefix(b))
	b.Run(fmt.Sprintf("redis/P=%d/R=%d", o.Profiles, o.Replicas), func(b *testing.B) {
		for range b.N {
			credentialstest.Burst(b, func() (driver.Adapter, error) {
				return driver.Open(context.Background(), u)
			}, o)
		}
	})
}
