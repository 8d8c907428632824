package kmem

import (
	"strings"
	"testing"
)

func TestParseNetCounters(t *testing.T) {
	softnet := "0000a1b2 00000010 00000000 00000000\n0000c3d4 0000000f 00000001 00000000\n"
	if got, err := parseSoftnet(strings.NewReader(softnet)); err != nil || got != 0x10+0x0f {
		t.Fatalf("softnet: %d, %v; want 31", got, err)
	}
	if _, err := parseSoftnet(strings.NewReader("")); err == nil {
		t.Fatal("an empty softnet_stat parsed")
	}
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin RetransSegs InErrs\nTcp: 1 200 4242 0\n"
	got, err := parseSNMP(strings.NewReader(snmp), "Tcp:", "RetransSegs")
	if err != nil || got["RetransSegs"] != 4242 {
		t.Fatalf("snmp: %v, %v", got, err)
	}
	netstat := "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPTimeouts\nTcpExt: 0 7 9 3\nIpExt: InNoRoutes\nIpExt: 0\n"
	got, err = parseSNMP(strings.NewReader(netstat), "TcpExt:", "ListenOverflows", "ListenDrops", "TCPTimeouts")
	if err != nil || got["ListenOverflows"] != 7 || got["ListenDrops"] != 9 || got["TCPTimeouts"] != 3 {
		t.Fatalf("netstat: %v, %v", got, err)
	}
	if _, err := parseSNMP(strings.NewReader(netstat), "TcpExt:", "NoSuchCounter"); err == nil {
		t.Fatal("a missing counter did not fail")
	}
	d := Net{SoftnetDropped: 5, RetransSegs: 10}.Sub(Net{SoftnetDropped: 2, RetransSegs: 4})
	if d != (Net{SoftnetDropped: 3, RetransSegs: 6}) {
		t.Fatalf("Sub: %+v", d)
	}
	if s := (Net{}).String(); !strings.Contains(s, "no packet") {
		t.Fatalf("zero String: %q", s)
	}
}
