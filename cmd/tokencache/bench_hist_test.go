package main

import (
	"testing"
	"time"
)

func TestHistIndexCoversEveryValueInOrder(t *testing.T) {
	prev := 0
	for _, v := range []uint64{0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 100, 1000, 1 << 20, 1<<36 - 1, 1 << 36, 1 << 40, 1<<63 + 5} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, after %d", v, i, prev)
		}
		prev = i
		if low, width := histBucket(i); v < 1<<(histMaxExp+1) && (v < low || v >= low+width) {
			t.Fatalf("%d is in bucket %d = [%d, %d)", v, i, low, low+width)
		}
	}
	// Buckets tile the range: each starts where the previous ends.
	for i := 1; i < histBuckets; i++ {
		pl, pw := histBucket(i - 1)
		if l, _ := histBucket(i); l != pl+pw {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, l, i-1, pl+pw)
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var a, b latencyHist
	for i := 1; i <= 1000; i++ {
		a.record(time.Duration(i) * time.Microsecond)
	}
	b.record(5 * time.Second)
	var m histSum
	m.add(a.snapshot())
	m.addHist(&b)
	if m.n != 1001 {
		t.Fatalf("n = %d", m.n)
	}
	near := func(got, want time.Duration) bool {
		return got >= want-want/histSub && got <= want+want/histSub
	}
	if p := m.quantile(0.5); !near(p, 500*time.Microsecond) {
		t.Errorf("p50 = %v, want about 500µs", p)
	}
	if p := m.quantile(0.99); !near(p, 990*time.Microsecond) {
		t.Errorf("p99 = %v, want about 990µs", p)
	}
	if p := m.quantile(1); p != 5*time.Second {
		t.Errorf("p100 = %v, want the exact max 5s", p)
	}
	var empty histSum
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
}
