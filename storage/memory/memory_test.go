package memory_test

import (
	"context"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/memory"
)

func TestConformance(t *testing.T) {
	// Each connection is its own Adapter over the same named data, so that
	// closing one leaves the others working, as with a server.
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return memory.New(&memory.Options{Name: "conformance"}) })
}

func TestOpenURL(t *testing.T) {
	a, err := storage.Open(context.Background(), "memory://open-url")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok := a.Adapter().(*memory.Adapter); !ok {
		t.Fatalf("memory:// opened %T", a.Adapter())
	}
}

func BenchmarkStore(b *testing.B) {
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return memory.New(nil) })
}
