package kmem

import (
	"fmt"
	"os"
)

// Read takes a snapshot. It fails only if /proc/net/sockstat cannot be read; without
// /proc/slabinfo (not root) the snapshot says why in SlabError.
func Read() (Snapshot, error) { return read("/proc/net/sockstat", "/proc/slabinfo") }

func read(sockstatPath, slabinfoPath string) (Snapshot, error) {
	var s Snapshot
	f, err := os.Open(sockstatPath)
	if err != nil {
		return s, err
	}
	defer f.Close()
	if err := parseSockstat(f, int64(os.Getpagesize()), &s); err != nil {
		return s, err
	}
	sf, err := os.Open(slabinfoPath)
	if err != nil {
		s.SlabError = fmt.Sprintf("slab caches not read (%v): /proc/slabinfo is readable by root only", err)
		return s, nil
	}
	defer sf.Close()
	if s.Slab, err = parseSlabinfo(sf); err != nil {
		s.Slab, s.SlabError = nil, err.Error()
		return s, nil
	}
	for _, v := range s.Slab {
		s.SlabBytes += v
	}
	return s, nil
}

// ReadNet reads the host's drop and retransmission counters.
func ReadNet() (Net, error) {
	return readNet("/proc/net/softnet_stat", "/proc/net/snmp", "/proc/net/netstat")
}

func readNet(softnetPath, snmpPath, netstatPath string) (Net, error) {
	var n Net
	f, err := os.Open(softnetPath)
	if err != nil {
		return n, err
	}
	n.SoftnetDropped, err = parseSoftnet(f)
	f.Close()
	if err != nil {
		return n, err
	}
	f, err = os.Open(snmpPath)
	if err != nil {
		return n, err
	}
	tcp, err := parseSNMP(f, "Tcp:", "RetransSegs")
	f.Close()
	if err != nil {
		return n, err
	}
	f, err = os.Open(netstatPath)
	if err != nil {
		return n, err
	}
	ext, err := parseSNMP(f, "TcpExt:", "ListenOverflows", "ListenDrops", "TCPTimeouts")
	f.Close()
	if err != nil {
		return n, err
	}
	n.RetransSegs = tcp["RetransSegs"]
	n.ListenOverflows, n.ListenDrops, n.Timeouts = ext["ListenOverflows"], ext["ListenDrops"], ext["TCPTimeouts"]
	return n, nil
}
