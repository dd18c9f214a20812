package credentials_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// burstOptions reads TOKENCACHE_BURST_{PROFILES,REPLICAS,LIFETIME_S,LIFETIMES}:
// P (1000), R (8), the lifetime in seconds (6) and E (3).
func burstOptions() credentialstest.BurstOptions {
	return credentialstest.BurstOptions{
		Profiles:  envInt("TOKENCACHE_BURST_PROFILES", 1000),
		Replicas:  envInt("TOKENCACHE_BURST_REPLICAS", 8),
		Lifetime:  time.Duration(envInt("TOKENCACHE_BURST_LIFETIME_S", 6)) * time.Second,
		Lifetimes: envInt("TOKENCACHE_BURST_LIFETIMES", 3),
	}
}

// BenchmarkBurst is the many-profiles scale run (credentialstest.Burst) on
// the stores a process can hold without a server: memory (the replicas
// share one in-process map), SQLite and the file store (each replica opens
// the same database or file, as processes on one machine would).
// TOKENCACHE_BURST_STORES picks some (memory,sqlite,file; all by default).
// The Redis run is in integration/storage/redis, beside its server.
//
//	TOKENCACHE_BURST_PROFILES=10000 TOKENCACHE_BURST_LIFETIME_S=30 go test -run '^$' -bench Burst -benchtime 1x ./credentials/
//
// The file store rewrites its one JSON document on every write, so at
// 10,000 profiles its seeding alone writes gigabytes; it is what it is for
// a few hundred profiles, and runs at most 1,000.
func BenchmarkBurst(b *testing.B) {
	o := burstOptions()
	stores := []struct {
		name string
		open func(b *testing.B) func() (driver.Adapter, error)
	}{
		{"memory", func(b *testing.B) func() (driver.Adapter, error) {
			name := fmt.Sprintf("%s-%d", b.Name(), time.Now().UnixNano())
			return func() (driver.Adapter, error) { return memory.New(&memory.Options{Name: name}), nil }
		}},
		{"sqlite", func(b *testing.B) func() (driver.Adapter, error) {
			u := "sqlite://" + filepath.Join(b.TempDir(), "tokens.db")
			return func() (driver.Adapter, error) { return driver.Open(context.Background(), u) }
		}},
		{"file", func(b *testing.B) func() (driver.Adapter, error) {
			u := "file://" + filepath.Join(b.TempDir(), "credentials.json")
			return func() (driver.Adapter, error) { return driver.Open(context.Background(), u) }
		}},
	}
	pick := os.Getenv("TOKENCACHE_BURST_STORES")
	for _, s := range stores {
		if pick != "" && !strings.Contains(","+pick+",", ","+s.name+",") {
			continue
		}
		o := o
		if s.name == "file" {
			o.Profiles = min(o.Profiles, 1000)
		}
		b.Run(fmt.Sprintf("%s/P=%d/R=%d", s.name, o.Profiles, o.Replicas), func(b *testing.B) {
			open := s.open(b)
			for range b.N {
				credentialstest.Burst(b, open, o)
			}
		})
	}
}
