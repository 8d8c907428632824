package kmem

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Net holds the host's counters of packets the kernel dropped or sent again. On loopback
// nothing is lost on a wire, yet a packet can be dropped when a CPU's backlog is full
// (softnet) or a listener's accept queue is (listen overflows), and TCP then resends it
// after a retransmission timeout of at least 200 ms (1 s for a SYN): a latency tail that
// is the kernel's, not the server's. A benchmark that reports latency should report these
// for the same window.
type Net struct {
	SoftnetDropped  uint64 `json:"softnet_dropped"`  // /proc/net/softnet_stat, all CPUs
	ListenOverflows uint64 `json:"listen_overflows"` // TcpExt ListenOverflows: accept queue full
	ListenDrops     uint64 `json:"listen_drops"`     // TcpExt ListenDrops
	RetransSegs     uint64 `json:"retrans_segs"`     // Tcp RetransSegs: segments sent again
	Timeouts        uint64 `json:"timeouts"`         // TcpExt TCPTimeouts: retransmission timeouts
}

// Sub returns n − before, counter by counter.
func (n Net) Sub(before Net) Net {
	return Net{
		SoftnetDropped:  n.SoftnetDropped - before.SoftnetDropped,
		ListenOverflows: n.ListenOverflows - before.ListenOverflows,
		ListenDrops:     n.ListenDrops - before.ListenDrops,
		RetransSegs:     n.RetransSegs - before.RetransSegs,
		Timeouts:        n.Timeouts - before.Timeouts,
	}
}

// String describes a difference of counters for a report.
func (n Net) String() string {
	if n == (Net{}) {
		return "no packet dropped or resent"
	}
	return fmt.Sprintf("%d packets dropped by a full CPU backlog, %d accept-queue overflows, %d TCP segments resent, %d retransmission timeouts",
		n.SoftnetDropped, n.ListenOverflows, n.RetransSegs, n.Timeouts)
}

// parseSoftnet sums the second column (dropped, hexadecimal) of /proc/net/softnet_stat.
func parseSoftnet(r io.Reader) (uint64, error) {
	var sum uint64
	sc := bufio.NewScanner(r)
	lines := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("softnet_stat: %q: %w", f[1], err)
		}
		sum += v
		lines++
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if lines == 0 {
		return 0, fmt.Errorf("softnet_stat: no CPU lines")
	}
	return sum, nil
}

// parseSNMP reads the named counters of one protocol ("Tcp:", "TcpExt:") from the
// header-line/value-line pairs of /proc/net/snmp or /proc/net/netstat.
func parseSNMP(r io.Reader, proto string, names ...string) (map[string]uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var header []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != proto {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		out := make(map[string]uint64, len(names))
		for _, name := range names {
			i := indexOf(header, name)
			if i < 0 || i >= len(f) {
				return nil, fmt.Errorf("%s %s: not in the kernel's table", proto, name)
			}
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %q: %w", proto, name, f[i], err)
			}
			out[name] = v
		}
		return out, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s: no counters", proto)
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
