// Package hist is a log-linear latency histogram: 16 linear buckets per
// power of two, so a reported percentile is within 6.25% of the true value.
// A Hist is not safe for concurrent use; keep one per goroutine and Merge.
package hist

import (
	"encoding/json"
	"fmt"
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

// wire is the JSON form of a Hist: the non-empty buckets as [index, count] pairs.
type wire struct {
	N       uint64      `json:"n"`
	Max     int64       `json:"max_ns"`
	Buckets [][2]uint64 `json:"buckets"`
}

// MarshalJSON encodes h compactly (the non-empty buckets only), so that processes can
// send their histograms to one that merges them.
func (h *Hist) MarshalJSON() ([]byte, error) {
	w := wire{N: h.n, Max: h.max, Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c > 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON wrote, replacing h's contents.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = Hist{n: w.N, max: w.Max}
	var sum uint64
	for _, bc := range w.Buckets {
		if bc[0] >= uint64(len(h.counts)) {
			return fmt.Errorf("hist: bucket %d out of range", bc[0])
		}
		h.counts[bc[0]] += bc[1]
		sum += bc[1]
	}
	if sum != w.N {
		return fmt.Errorf("hist: buckets hold %d values, n says %d", sum, w.N)
	}
	return nil
}
