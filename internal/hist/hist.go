// Package hist is a log-linear latency histogram: 16 linear buckets per
// power of two, so a reported percentile is within 6.25% of the true value.
// A Hist is not safe for concurrent use; keep one per goroutine and Merge.
package hist

import (
	"math/bits"
	"time"
)

const subBits = 4 // 16 buckets per octave

// Hist counts durations in nanoseconds.
type Hist struct {
	counts [64 << subBits]uint64
	n      uint64
	max    int64
}

func index(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - 1 // >= subBits
	m := (v >> (e - subBits)) & (1<<subBits - 1)
	return (e-subBits+1)<<subBits | int(m)
}

// lower returns the smallest value that falls in bucket i.
func lower(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	e := i>>subBits + subBits - 1
	m := uint64(i & (1<<subBits - 1))
	return (1<<subBits | m) << (e - subBits)
}

// Record adds one duration; negative durations count as zero.
func (h *Hist) Record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[index(uint64(ns))]++
	h.n++
	if ns > h.max {
		h.max = ns
	}
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest recorded value.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the q-quantile (0 < q <= 1): the middle of the bucket
// holding it, capped at Max.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lower(i), lower(i+1)
			return min(time.Duration(lo+(hi-lo)/2), time.Duration(h.max))
		}
	}
	return time.Duration(h.max)
}
