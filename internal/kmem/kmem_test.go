package kmem

import (
	"strings"
	"testing"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const sockstat = `sockets: used 8016
TCP: inuse 8003 orphan 2 tw 4179 alloc 8005 mem 135
UDP: inuse 0 mem 0
`

const slabinfo = `slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCP                 8100   8120   2368   13    8 : tunables    0    0    0 : slabdata    625    625      0
sock_inode_cache    8200   8250    832   39    8 : tunables    0    0    0 : slabdata    212    212      0
kmalloc-192        99999 100000    192   21    1 : tunables    0    0    0 : slabdata   4762   4762      0
`

func TestParse(t *testing.T) {
	t.Parallel()
	var s Snapshot
	if err := parseSockstat(strings.NewReader(sockstat), 4096, &s); err != nil {
		t.Fatal(err)
	}
	if s.Sockets != 8016 || s.TCPInuse != 8003 || s.TCPOrphan != 2 || s.TCPTimeWait != 4179 || s.TCPAlloc != 8005 || s.TCPMemBytes != 135*4096 {
		t.Errorf("sockstat parsed as %+v", s)
	}
	if err := parseSockstat(strings.NewReader("UDP: inuse 0\n"), 4096, &s); err == nil {
		t.Error("sockstat without a TCP line: no error")
	}
	slab, err := parseSlabinfo(strings.NewReader(slabinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(slab) != 2 || slab["TCP"] != 8100*2368 || slab["sock_inode_cache"] != 8200*832 {
		t.Errorf("slabinfo parsed as %v (kmalloc-192 is not one of Caches)", slab)
	}
	if _, err := parseSlabinfo(strings.NewReader("TCP x 1 2368\n")); err == nil {
		t.Error("bad slabinfo line: no error")
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	before := Snapshot{TCPMemBytes: 4096, Slab: map[string]int64{"TCP": 1000, "dentry": 500}, SlabBytes: 1500}
	after := Snapshot{TCPMemBytes: 8192, Slab: map[string]int64{"TCP": 5000, "dentry": 900}, SlabBytes: 5900}
	p := Diff(before, after, 2)
	if p.TCPMemBytes != 2048 || p.SlabBytes != 2200 || p.TotalBytes != 4248 || p.Slab["TCP"] != 2000 || p.Slab["dentry"] != 200 {
		t.Errorf("Diff = %+v", p)
	}
	after.Slab, after.SlabError = nil, "no slabinfo"
	if p := Diff(before, after, 2); p.Slab != nil || p.SlabError != "no slabinfo" {
		t.Errorf("Diff without slabinfo = %+v", p)
	}
}
