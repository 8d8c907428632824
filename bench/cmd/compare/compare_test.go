package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The committed run in docs/benchmarks is read back, summarised and drawn: a change in
// what memslope, fanout or loadgen write that compare no longer understands fails here.
func TestSummaryOfCommittedRun(t *testing.T) {
	res, err := load(filepath.Join("..", "..", "..", "docs", "benchmarks"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range res.rows() {
		got[r.metric]++
		if r.value < 0 {
			t.Errorf("%s %s = %v", r.impl, r.metric, r.value)
		}
	}
	for _, metric := range []string{"rss_per_conn", "fanout_deliveries_per_sec", "window16_deliveries_per_sec", "rate2_p99", "echo_per_sec", "connect_per_sec"} {
		if got[metric] != 5 {
			t.Errorf("%s: %d implementations, want 5", metric, got[metric])
		}
	}
	dir := t.TempDir()
	if err := drawCharts(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"memory.png", "goroutines-fds.png", "fanout.png", "latency.png", "echo.png", "connect.png"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() < 1000 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := writeCSV(filepath.Join(dir, "summary.csv"), res); err != nil {
		t.Fatal(err)
	}
}
