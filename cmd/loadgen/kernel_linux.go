//go:build linux

package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/livepoll/livepoll/internal/kmem"
)

// kernelReport is the host kernel's socket memory before the fleet and once it is up.
// The counters are the whole host's: with the server on this host (its own, or a
// loopback -url) both ends of every connection are in them, so per_conn is the cost of
// a connection pair, and half of it that of one end (the two ends are alike: a TCP
// socket, its inode, file and epoll entry each).
type kernelReport struct {
	Before  kmem.Snapshot `json:"before"`
	After   kmem.Snapshot `json:"after"`
	Conns   int64         `json:"conns"`    // loadgen's connections open at the After reading (publishers included)
	Ends    int           `json:"ends"`     // socket ends per connection in the counters: 2 (server on this host) or 1
	PerConn kmem.PerConn  `json:"per_conn"` // (after − before) ÷ conns: both ends when ends is 2
	// PerEndBytes is per_conn.total_bytes ÷ ends: one socket end's cost, the server's
	// share when ends is 2.
	PerEndBytes float64 `json:"per_end_bytes"`
}

// kernelAfter finishes the kernel figures once the fleet is up; before is the reading
// before the first dial.
func kernelAfter(before kmem.Snapshot, conns int64, sameHost bool) (*kernelReport, string) {
	after, err := kmem.Read()
	if err != nil {
		return nil, err.Error()
	}
	k := &kernelReport{Before: before, After: after, Conns: conns, Ends: 1}
	if sameHost {
		k.Ends = 2
	}
	if conns > 0 {
		k.PerConn = kmem.Diff(before, after, conns)
		k.PerEndBytes = k.PerConn.TotalBytes / float64(k.Ends)
	}
	return k, ""
}

// describe is the report's line on the kernel figures.
func (k *kernelReport) describe() string {
	p := k.PerConn
	ends := "the client end only (the server is elsewhere)"
	if k.Ends == 2 {
		ends = fmt.Sprintf("both ends of each loopback connection; one end ≈ %.0f B", k.PerEndBytes)
	}
	s := fmt.Sprintf("%.0f B (%s): socket buffers %.0f B, slab %.0f B", p.TotalBytes, ends, p.TCPMemBytes, p.SlabBytes)
	if p.SlabError != "" {
		return s + " — " + p.SlabError
	}
	caches := slices.Sorted(maps.Keys(p.Slab))
	slices.SortStableFunc(caches, func(a, b string) int { return cmp.Compare(p.Slab[b], p.Slab[a]) })
	var parts []string
	for _, c := range caches {
		if v := p.Slab[c]; v >= 0.5 || v <= -0.5 {
			parts = append(parts, fmt.Sprintf("%s %.0f", c, v))
		}
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}
