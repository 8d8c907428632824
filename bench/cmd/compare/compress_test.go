package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writePart writes <dir>/<part>.json with three runs of every impl; result(impl, run)
// gives a run's program JSON, and impls in skip are recorded as not run, with a reason.
func writePart(t *testing.T, dir, part string, impls []string, skip map[string]string, result func(impl string, run int) string) {
	t.Helper()
	pf := partFile{Meta: meta{Part: part, Runs: 3, Impls: impls, Command: "go run ./cmd/compare"}}
	for r := 1; r <= 3; r++ {
		for _, impl := range impls {
			if why := skip[impl]; why != "" {
				pf.Records = append(pf.Records, record{Run: r, Impl: impl, Skipped: why})
				continue
			}
			pf.Records = append(pf.Records, record{Run: r, Impl: impl, Result: json.RawMessage(result(impl, r))})
		}
	}
	if err := writeJSON(filepath.Join(dir, part+".json"), pf); err != nil {
		t.Fatal(err)
	}
}

// reportTables runs report on dir and returns the tables.md it wrote.
func reportTables(t *testing.T, dir string) string {
	t.Helper()
	if err := report(dir, ""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tables.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantInTables reports each of wants that tables lacks.
func wantInTables(t *testing.T, tables string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(tables, want) {
			t.Errorf("tables.md lacks %q:\n%s", want, tables)
		}
	}
}

// wantCharts reports each of files that dir lacks or that is too small to be a chart.
func wantCharts(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() < 1000 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func fanoutJSON(cpu, wire float64, compressed int) string {
	return fmt.Sprintf(`{"deliveries_per_sec":100000,"cpu_us_per_delivery":%g,"other_cpu_ns":0,"client":{"seconds":8,`+
		`"total":900000,"wire_bytes_per_delivery":%g,"compressed":%d,"lost":0,"lost_closed":0,"dup":0,"closed":0,`+
		`"latency":{"p50_us":1000,"p90_us":2000,"p99_us":3000,"p999_us":4000,"max_us":5000}}}`, cpu, wire, compressed)
}

// The compression parts: tables with mizu n/a and why, the cost of compression against
// each server's own plain figure, issue 11's targets checked on the medians, the memory
// difference, losses, and the charts; skipped implementations are not failures.
func TestCompressionParts(t *testing.T) {
	impls := []string{"livepoll", "mizu", "gorilla"}
	noZ := map[string]string{"mizu": noCompression["mizu"]}
	for _, tc := range []struct {
		name          string
		gorillaZ      float64 // gorilla's compressed CPU per delivery
		livepollZ     float64 // livepoll's, against a plain 7 µs
		wantCPU, want string
	}{
		{"targets met", 12, 8, "1.14×", "1.14×, met; below every peer's compressed figure (livepoll 8.00 µs; gorilla 12.00): met."},
		{"targets not met", 7.5, 9, "1.29×", "1.29×, **not met**; below every peer's compressed figure (livepoll 9.00 µs; gorilla 7.50): **not met**."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writePart(t, dir, "fanout2k", impls, nil, func(impl string, r int) string {
				return fanoutJSON(map[string]float64{"livepoll": 7, "mizu": 20, "gorilla": 10}[impl]+float64(r-2)/10, 2070, 0)
			})
			writePart(t, dir, "fanoutz", impls, noZ, func(impl string, r int) string {
				return fanoutJSON(map[string]float64{"livepoll": tc.livepollZ, "gorilla": tc.gorillaZ}[impl]+float64(r-2)/10, 640, 900000)
			})
			mem := func(rss float64) func(string, int) string {
				return func(impl string, r int) string {
					return fmt.Sprintf(`{"rss_bytes_per_conn":%g,"heap_stack_bytes_per_conn":900,"goroutines_per_conn":0,"fds_per_conn":1,"compressed_echoes":18000}`,
						rss+map[string]float64{"livepoll": 0, "mizu": 30000, "gorilla": 16000}[impl]+float64(r))
				}
			}
			writePart(t, dir, "memory", impls, nil, mem(1000))
			writePart(t, dir, "memoryz", impls, noZ, mem(1020))
			tables := reportTables(t, dir)
			wantInTables(t, tables,
				"<!-- table:fanout2k -->", "<!-- table:fanoutz -->", "<!-- table:compression -->", "<!-- table:memoryz -->",
				"| mizu | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |",
				"n/a for mizu: mizu's live has no permessage-deflate.",
				"| livepoll | 7.00 (6.90–7.10) | "+fixed(2)(tc.livepollZ)+" (",
				"| "+tc.wantCPU+" | 2,070 | 640 | 0.31× |",
				tc.want,
				"| livepoll | 1,022 B (1,021 B–1,023 B) | 900 B | 0.00 | 1.00 | 18,000 | 1,002 B (1,001 B–1,003 B) | +20 B |",
				"within 100 B of without: 20 B, met.",
				"2 KiB compressed lost",
			)
			if !strings.Contains(tables, "### Failed program runs (their figures are unknown in the tables)\n\nNone.") {
				t.Errorf("a part not run for mizu counts as a failure:\n%s", tables)
			}
			wantCharts(t, dir, "compression-cpu.png", "compression-wire.png", "memoryz.png", "memory.png", "losses.png")
			for _, f := range []string{"fanout.png", "echo.png"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Errorf("%s drawn without its part", f)
				}
			}
		})
	}
}
