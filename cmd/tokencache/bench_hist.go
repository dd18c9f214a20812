package main

import (
	"math"
	"math/bits"
	"time"
)

// latencyHist is a fixed-bucket log-linear histogram of durations, in the
// manner of HdrHistogram: each power of two of nanoseconds is split into
// histSub buckets, so a recorded value is known to within 1/histSub of
// itself. Recording is an index computation and an increment on memory the
// recording goroutine owns, with no lock, atomic or allocation; goroutines
// keep their own and merge them at the end.
type latencyHist struct {
	// Counts saturate rather than wrap; a bucket would need four billion
	// samples from one goroutine to get there.
	counts [histBuckets]uint32
	n      uint64
	max    uint64
}

const (
	histSubBits = 4
	histSub     = 1 << histSubBits // buckets per power of two: <= 6.25% error
	histMaxExp  = 36               // 2^36 ns is over a minute; longer goes in the last bucket
	histBuckets = (histMaxExp - histSubBits + 2) * histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v is in [2^e, 2^(e+1))
	if e > histMaxExp {
		return histBuckets - 1
	}
	shift := e - histSubBits
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histBucket is the range [low, low+width) of bucket i.
func histBucket(i int) (low, width uint64) {
	block := i / histSub
	if block == 0 {
		return uint64(i), 1
	}
	shift := block - 1
	return uint64(i%histSub+histSub) << shift, 1 << shift
}

func (h *latencyHist) record(d time.Duration) {
	v := uint64(max(d, 0))
	i := histIndex(v)
	if h.counts[i] == math.MaxUint32 {
		return
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, v)
}

// histSnapshot is a histogram on the wire: the non-empty buckets as
// [index, count] pairs.
type histSnapshot struct {
	Buckets [][2]uint64 `json:"buckets,omitempty"`
	Max     uint64      `json:"max_ns"`
}

func (h *latencyHist) snapshot() histSnapshot {
	var s histSnapshot
	for i, c := range h.counts {
		if c > 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), uint64(c)})
		}
	}
	s.Max = h.max
	return s
}

// histSum merges snapshots from many goroutines and processes.
type histSum struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
}

func (m *histSum) add(s histSnapshot) {
	for _, b := range s.Buckets {
		if b[0] < histBuckets {
			m.counts[b[0]] += b[1]
			m.n += b[1]
		}
	}
	m.max = max(m.max, s.Max)
}

func (m *histSum) addHist(h *latencyHist) {
	for i, c := range h.counts {
		m.counts[i] += uint64(c)
	}
	m.n += h.n
	m.max = max(m.max, h.max)
}

// snapshot turns the sum back into the wire form, for a replica that
// merged its goroutines' histograms.
func (m *histSum) snapshot() histSnapshot {
	var s histSnapshot
	for i, c := range m.counts {
		if c > 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), c})
		}
	}
	s.Max = m.max
	return s
}

// quantile is the value below which a fraction q of the samples lie: the
// middle of the bucket holding that sample, never above the largest
// sample seen, which is exact. Zero when there are no samples.
func (m *histSum) quantile(q float64) time.Duration {
	if m.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(m.n)))
	rank = min(max(rank, 1), m.n)
	if rank == m.n {
		return time.Duration(m.max) // the largest sample is known exactly
	}
	var seen uint64
	for i, c := range m.counts {
		seen += c
		if seen >= rank {
			low, width := histBucket(i)
			return time.Duration(min(low+width/2, m.max))
		}
	}
	return time.Duration(m.max)
}
