package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// The wss parts: tables beside the ws figures, a server that cannot be served over TLS
// n/a with its reason (not a failure), losses counted, and the charts.
func TestTLSParts(t *testing.T) {
	impls := []string{"livepoll", "mizu", "gorilla"}
	noWSS := map[string]string{"gorilla": "made up: no TLS"}
	dir := t.TempDir()
	mem := func(rss float64) func(string, int) string {
		return func(impl string, r int) string {
			return fmt.Sprintf(`{"rss_bytes_per_conn":%g,"heap_stack_bytes_per_conn":900,"goroutines_per_conn":0,"fds_per_conn":1}`,
				rss+map[string]float64{"livepoll": 0, "mizu": 30000, "gorilla": 16000}[impl]+float64(r))
		}
	}
	writePart(t, dir, "memory", impls, nil, mem(1000))
	writePart(t, dir, "memorytls", impls, noWSS, mem(2700))
	writePart(t, dir, "fanout", impls, nil, func(impl string, r int) string {
		return fanoutJSON(map[string]float64{"livepoll": 5, "mizu": 14, "gorilla": 11}[impl]+float64(r-2)/10, 100, 0)
	})
	writePart(t, dir, "fanouttls", impls, noWSS, func(impl string, r int) string {
		return fanoutJSON(map[string]float64{"livepoll": 7, "mizu": 21}[impl]+float64(r-2)/10, 100, 0)
	})
	tables := reportTables(t, dir)
	wantInTables(t, tables,
		"<!-- table:memorytls -->", "<!-- table:fanouttls -->",
		"| livepoll | 2,702 B (2,701 B–2,703 B) | 900 B | 0.00 | 1.00 | 1,002 B (1,001 B–1,003 B) | +1,700 B |",
		"| gorilla | n/a | n/a | n/a | n/a | 17,002 B (17,001 B–17,003 B) | n/a |",
		"n/a for gorilla: made up: no TLS.",
		"| livepoll | 100,000 | 7.00 (6.90–7.10) | 0.00 | 1.00 ms | 3.00 ms | 0 | 0 | 0 | 5.00 (4.90–5.10) | 1.40× |",
		"| mizu | 100,000 | 21.00 (20.90–21.10) |",
		"wss fan-out lost", "livepoll `Server.ServeTLS`",
	)
	if !strings.Contains(tables, "### Failed program runs (their figures are unknown in the tables)\n\nNone.") {
		t.Errorf("a part not run for gorilla counts as a failure:\n%s", tables)
	}
	wantCharts(t, dir, "memorytls.png", "fanouttls.png", "losses.png")
}

// A part with tls set skips the implementations in noTLS, with the reason.
func TestSkipReason(t *testing.T) {
	noTLS["x"] = "x has no TLS"
	defer delete(noTLS, "x")
	for _, tc := range []struct {
		p    part
		impl string
		want string
	}{
		{part{tls: true}, "x", "x has no TLS"},
		{part{tls: true}, "livepoll", ""},
		{part{}, "x", ""},
		{part{compress: true}, "mizu", noCompression["mizu"]},
		{part{tls: true}, "mizu", ""},
	} {
		if got := skipReason(tc.p, tc.impl); got != tc.want {
			t.Errorf("skipReason(%+v, %s) = %q, want %q", tc.p, tc.impl, got, tc.want)
		}
	}
	for _, p := range parts() {
		if strings.HasSuffix(p.name, "tls") != p.tls {
			t.Errorf("part %s: tls %v", p.name, p.tls)
		}
	}
}

// The echo part in closed loop (issue 13): its title says so, the server's CPU per round
// trip is in the table and in echocpu.png; a run of an older loadgen shows "–" there.
func TestEchoClosedLoop(t *testing.T) {
	impls := []string{"livepoll", "mizu"}
	dir := t.TempDir()
	pf := partFile{Meta: meta{Part: "echo", Runs: 3, Impls: impls, Command: "go run ./cmd/compare",
		Args: []string{"-scenario", "echo", "-conns", "1000", "-inflight", "1", "-duration", "8s"}}}
	for r := 1; r <= 3; r++ {
		for _, impl := range impls {
			load := fmt.Sprintf(`"deliveries_per_sec":%d,"sent":1000,"lost":0,"unanswered":0,"latency":{"p50_ms":1,"p99_ms":2}`, 40000+r)
			if impl == "livepoll" {
				load += fmt.Sprintf(`,"server_cpu_us_per_delivery":%g,"loadgen_cpu_us_per_delivery":%g`, 10+float64(r), 20.5)
			}
			res := `{"load":{` + load + `},"connections":{"failed":0,"server_closed":0,"server_closed_by":{}}}`
			pf.Records = append(pf.Records, record{Run: r, Impl: impl, Result: json.RawMessage(res)})
		}
	}
	if err := writeJSON(filepath.Join(dir, "echo.json"), pf); err != nil {
		t.Fatal(err)
	}
	tables := reportTables(t, dir)
	wantInTables(t, tables,
		"### Echo round trips, closed loop: 1,000 connections, one request in flight each (loadgen -scenario echo -inflight 1)",
		"| livepoll | 40,002 (40,001–40,003) | 1.00 ms | 2.00 ms | 12.00 (11.00–13.00) | 1,000 |",
		"| mizu | 40,002 (40,001–40,003) | 1.00 ms | 2.00 ms | – | 1,000 |",
		"– : not measured",
	)
	s, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.st.get("livepoll", "echo.loadgen_cpu_us"); st.Known != 3 || st.Median != 20.5 || st.Unit != "us" {
		t.Errorf("echo.loadgen_cpu_us: %+v", st)
	}
	wantCharts(t, dir, "echo.png", "echocpu.png")
}
