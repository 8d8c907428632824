//go:build linux

package main

import (
	"bytes"
	"testing"
)

// checkAbuser checks what every connection-holding abuser kind must account for: each
// one open, closed (by reason) or never connected.
func checkAbuser(t *testing.T, name string, r *abuserReport, count int) {
	t.Helper()
	if r == nil {
		t.Fatalf("%s: no report", name)
	}
	closed := int64(0)
	for _, n := range r.ClosedBy {
		closed += n
	}
	if r.Count != count || r.OpenAtEnd+closed+r.NeverConnected != int64(count) || r.BytesSent <= 0 {
		t.Errorf("%s: %+v: want %d accounted for (open, closed or never connected) and bytes sent", name, *r, count)
	}
}

func TestAbuseAgainstOwnServer(t *testing.T) {
	t.Parallel()
	r := runLoadgen(t, "-scenario", "abuse", "-conns", "20", "-rate", "100", "-duration", "2s", "-progress", "0",
		"-flooders", "2", "-flood-size", "16384", "-nonreaders", "1", "-nonreader-size", "65536",
		"-slowreaders", "1", "-churners", "1", "-pingflood", "1")
	a := r.Abuse
	if a == nil {
		t.Fatal("no abuse report")
	}
	checkAbuser(t, "flooders", a.Flooders, 2)
	checkAbuser(t, "nonreaders", a.NonReaders, 1)
	checkAbuser(t, "slowreaders", a.SlowReaders, 1)
	checkAbuser(t, "pingflood", a.PingFlood, 1)
	if a.Flooders.BytesReceived <= 0 || a.PingFlood.BytesReceived <= 0 {
		t.Errorf("flooders received %d B, pingflood %d B: both read what the server sends", a.Flooders.BytesReceived, a.PingFlood.BytesReceived)
	}
	if a.NonReaders.BytesReceived != 0 || a.NonReaders.BytesDrained <= 0 {
		t.Errorf("nonreaders received %d B during the run (want 0), %d B at the end (want some)", a.NonReaders.BytesReceived, a.NonReaders.BytesDrained)
	}
	if a.SlowReaders.BytesReceived <= 0 || a.SlowReaders.BytesReceived > 4<<10*4 {
		t.Errorf("slowreaders received %d B in a 2 s run at 4 KiB/s", a.SlowReaders.BytesReceived)
	}
	if c := a.Churners; c == nil || c.Count != 1 || c.Cycles <= 0 || c.BytesSent <= 0 {
		t.Errorf("churners %+v", c)
	}
	if s := a.Server; s == nil || s.Samples == 0 || s.Before.RSSBytes == 0 || s.PeakRSSBytes == 0 || s.After.RSSBytes == 0 {
		t.Errorf("server figures %+v (%s)", s, a.ServerSkipped)
	}
	if l := r.Load; l == nil || l.Sent == 0 || l.Latency == nil || l.Latency.Count == 0 {
		t.Errorf("healthy clients' load %+v", l)
	}
	var out bytes.Buffer
	r.print(&out)
	for _, s := range []string{"abusers: flooders", "abusers: churners", "server during abuse", "echo round trip"} {
		if !bytes.Contains(out.Bytes(), []byte(s)) {
			t.Errorf("the table does not say %q:\n%s", s, out.String())
		}
	}
}

func TestAbuseReportsServerCloses(t *testing.T) {
	t.Parallel()
	// The 20 healthy connections are accepted first; every later connection (the
	// abusers) is closed with 1008 on its third echo request.
	url := startFaultyServer(t, &faultyServer{closeOn: func(conn int, k int64) string {
		if conn > 20 && k >= 3 {
			return "1008"
		}
		return ""
	}})
	r := runLoadgen(t, "-url", url, "-stats", "none", "-scenario", "abuse", "-conns", "20", "-rate", "100", "-duration", "1s",
		"-progress", "0", "-flooders", "2", "-flood-size", "4096", "-nonreaders", "1", "-nonreader-size", "65536")
	a := r.Abuse
	checkAbuser(t, "flooders", a.Flooders, 2)
	checkAbuser(t, "nonreaders", a.NonReaders, 1)
	if a.Flooders.ClosedBy["close_1008"] != 2 || a.NonReaders.ClosedBy["close_1008"] != 1 {
		t.Errorf("closed by: flooders %v, nonreaders %v; want close_1008 for all", a.Flooders.ClosedBy, a.NonReaders.ClosedBy)
	}
	if a.Server != nil || a.ServerSkipped == "" {
		t.Errorf("server figures %+v without /stats; skipped %q", a.Server, a.ServerSkipped)
	}
	if !r.nothingLost() {
		t.Errorf("the healthy clients lost messages: %s", r.lossSummary())
	}
}
