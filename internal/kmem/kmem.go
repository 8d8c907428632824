package kmem

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Caches are the slab caches Read sums: those that grew with every TCP connection when
// measured (4,000 loopback connection pairs, Linux 6.18, Go's netpoller at both ends),
// per pair: TCP ~4.7 KB (the sockets), sock_inode_cache ~1.6 KB, dentry ~0.56 KB,
// eventpoll_epi ~0.48 KB, filp ~0.38 KB. Everything else moved by under 0.1 KB per
// pair (kmalloc-*, shared with the rest of the kernel, included) and is left out as
// noise. TCPv6, tw_sock_TCP and request_sock_TCP are the same costs for IPv6 sockets,
// TIME_WAIT and half-open connections; eventpoll_pwq is there on older kernels.
var Caches = []string{"TCP", "TCPv6", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "eventpoll_pwq", "tw_sock_TCP", "tw_sock_TCPv6", "request_sock_TCP"}

// Snapshot is the kernel's socket memory at one moment, for the whole host: every
// process's sockets are in it (other programs' too).
type Snapshot struct {
	Sockets     int64 `json:"sockets_used"` // sockets of every family
	TCPInuse    int64 `json:"tcp_inuse"`
	TCPOrphan   int64 `json:"tcp_orphan"`
	TCPTimeWait int64 `json:"tcp_tw"`
	TCPAlloc    int64 `json:"tcp_alloc"`
	// TCPMemBytes is the memory charged to TCP socket buffers (sockstat's "mem", in
	// pages, times the page size): data queued and not yet read or acknowledged.
	TCPMemBytes int64 `json:"tcp_mem_bytes"`
	// Slab is, by cache of Caches, active objects × object size (nil without slabinfo).
	Slab map[string]int64 `json:"slab_bytes,omitempty"`
	// SlabBytes is Slab's sum.
	SlabBytes int64 `json:"slab_total_bytes"`
	// SlabError says why Slab is missing (/proc/slabinfo is readable by root only).
	SlabError string `json:"slab_error,omitempty"`
}

// Total is the socket memory the snapshot knows: buffers and slab objects.
func (s Snapshot) Total() int64 { return s.TCPMemBytes + s.SlabBytes }

// PerConn is what one connection cost the kernel between two snapshots.
type PerConn struct {
	TCPMemBytes float64            `json:"tcp_mem_bytes"`
	Slab        map[string]float64 `json:"slab_bytes,omitempty"`
	SlabBytes   float64            `json:"slab_total_bytes"`
	TotalBytes  float64            `json:"total_bytes"` // buffers + slab
	SlabError   string             `json:"slab_error,omitempty"`
}

// Diff returns (after − before) ÷ conns.
func Diff(before, after Snapshot, conns int64) PerConn {
	n := float64(max(conns, 1))
	p := PerConn{
		TCPMemBytes: float64(after.TCPMemBytes-before.TCPMemBytes) / n,
		SlabBytes:   float64(after.SlabBytes-before.SlabBytes) / n,
		TotalBytes:  float64(after.Total()-before.Total()) / n,
		SlabError:   after.SlabError,
	}
	if before.Slab != nil && after.Slab != nil {
		p.Slab = map[string]float64{}
		for k, v := range after.Slab {
			p.Slab[k] = float64(v-before.Slab[k]) / n
		}
	}
	return p
}

// parseSockstat reads /proc/net/sockstat's TCP line and sockets count into s.
func parseSockstat(r io.Reader, pageSize int64, s *Snapshot) error {
	sc := bufio.NewScanner(r)
	found := false
	for sc.Scan() {
		label, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		val := func(key string) int64 {
			for i := 0; i+1 < len(f); i += 2 {
				if f[i] == key {
					v, _ := strconv.ParseInt(f[i+1], 10, 64)
					return v
				}
			}
			return 0
		}
		switch label {
		case "sockets":
			s.Sockets = val("used")
		case "TCP":
			found = true
			s.TCPInuse, s.TCPOrphan, s.TCPTimeWait, s.TCPAlloc = val("inuse"), val("orphan"), val("tw"), val("alloc")
			s.TCPMemBytes = val("mem") * pageSize
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("kmem: no TCP line in sockstat")
	}
	return nil
}

// parseSlabinfo reads the caches of Caches from /proc/slabinfo (version 2.x:
// name active_objs num_objs objsize …).
func parseSlabinfo(r io.Reader) (map[string]int64, error) {
	want := map[string]bool{}
	for _, c := range Caches {
		want[c] = true
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !want[f[0]] {
			continue
		}
		active, err1 := strconv.ParseInt(f[1], 10, 64)
		size, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("kmem: bad slabinfo line %q", sc.Text())
		}
		out[f[0]] = active * size
	}
	return out, sc.Err()
}
