package kmem

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadSeesNewSockets opens loopback connections and checks the snapshot grows by
// two TCP sockets each, and (as root) by their slab objects. Other programs on the host
// open and close sockets meanwhile, so the bounds are loose.
func TestReadSeesNewSockets(t *testing.T) {
	before, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n = 200
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c, s)
	}
	after, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if grew := after.TCPInuse - before.TCPInuse; grew < n {
		t.Errorf("TCP inuse grew by %d for %d connection pairs", grew, n)
	}
	if os.Geteuid() != 0 {
		if after.SlabError == "" {
			t.Error("not root, yet no SlabError")
		}
		t.Logf("not root: %s", after.SlabError)
		return
	}
	if after.SlabError != "" {
		t.Fatalf("root, yet %s", after.SlabError)
	}
	// A TCP socket object is over 2 KB: 2n of them are over 2n KB.
	if grew := after.Slab["TCP"] - before.Slab["TCP"]; grew < 2*n*1024 {
		t.Errorf("TCP slab grew by %d B for %d connection pairs", grew, n)
	}
}

func TestReadWithoutSlabinfoSaysWhy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sockstatPath := filepath.Join(dir, "sockstat")
	if err := os.WriteFile(sockstatPath, []byte(sockstat), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := read(sockstatPath, filepath.Join(dir, "no-slabinfo"))
	if err != nil {
		t.Fatal(err)
	}
	if s.TCPInuse != 8003 || s.Slab != nil || s.SlabBytes != 0 || !strings.Contains(s.SlabError, "root only") {
		t.Errorf("snapshot %+v: want sockstat's figures and a SlabError saying why", s)
	}
	if _, err := read(filepath.Join(dir, "no-sockstat"), filepath.Join(dir, "no-slabinfo")); err == nil {
		t.Error("no sockstat: no error")
	}
}

// The host's counters read, and a loopback connection's traffic does not make them go
// backwards.
func TestReadNetOnThisHost(t *testing.T) {
	a, err := ReadNet()
	if err != nil {
		t.Fatalf("ReadNet: %v", err)
	}
	b, err := ReadNet()
	if err != nil {
		t.Fatal(err)
	}
	if b.RetransSegs < a.RetransSegs || b.SoftnetDropped < a.SoftnetDropped || b.Timeouts < a.Timeouts {
		t.Fatalf("counters went backwards: %+v then %+v", a, b)
	}
}
