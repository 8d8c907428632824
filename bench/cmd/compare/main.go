// Command compare runs the whole side-by-side comparison on this machine — memory per
// idle connection, fan-out at saturation and at a fixed rate, echo round trips and
// connect rate, for every implementation in bench/servers — one measurement program after
// the other, and writes the raw results (JSON), a summary (CSV) and PNG charts to -out.
//
//	cd bench && go run ./cmd/compare            # all five, ~20 minutes
//	cd bench && go run ./cmd/compare -quick     # smaller sizes, a smoke run (~4 minutes)
//
// The machine should be otherwise idle: every program reports the CPU time other
// processes took during its windows ("other cores"), and the numbers mean little when
// that is high.
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var (
	impls   = flag.String("impl", "livepoll,mizu,gorilla,nbio,gws", "comma-separated server apps (bench/servers/<impl>)")
	out     = flag.String("out", "results", "directory for JSON, CSV and PNG files")
	quick   = flag.Bool("quick", false, "smaller fleets and shorter windows (a smoke run, not for publishing)")
	only    = flag.String("only", "memory,fanout,window16,latency,echo", "comma-separated parts to run")
	timeout = flag.Duration("timeout", 60*time.Minute, "the whole run stops after this long")
)

// part is one measurement program run for every implementation.
type part struct {
	name string
	cmd  string   // bench command directory under cmd/, or "loadgen" (the main module's)
	args []string // besides -impl/-json
}

func main() {
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	sizes, subs, dur := "2000,6000,10000,14000,18000", "10000", "10s"
	quiesce := "20s"
	echoConns, connects := "1000", "10000"
	if *quick {
		sizes, subs, dur = "1000,3000,5000", "3000", "3s"
		quiesce = "5s"
		echoConns, connects = "200", "3000"
	}
	parts := []part{
		{"memory", "memslope", []string{"-sizes", sizes, "-quiesce", quiesce, "-timeout", "45m"}},
		{"fanout", "fanout", []string{"-subs", subs, "-duration", dur, "-timeout", "20m"}},
		// Saturation with 16 messages in flight: where a server can coalesce frames.
		{"window16", "fanout", []string{"-subs", subs, "-duration", dur, "-window", "16", "-floor=false", "-timeout", "20m"}},
		{"latency", "fanout", []string{"-subs", subs, "-duration", dur, "-rate", "2", "-floor=false", "-timeout", "20m"}},
		// Echo: open loop at a rate above what any of them sustains here, so the
		// achieved rate is each server's throughput (with loadgen on the same 2 cores).
		{"echo", "loadgen", []string{"-scenario", "echo", "-conns", echoConns, "-rate", "60000", "-duration", dur}},
		// Connect: handshakes as fast as 200 in flight allow.
		{"connect", "loadgen", []string{"-scenario", "idle", "-conns", connects, "-duration", "1s", "-connect-rate", "100000"}},
	}
	bin, err := os.MkdirTemp("", "compare-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(bin)

	want := map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		want[strings.TrimSpace(p)] = true
	}
	if want["echo"] {
		want["connect"] = true
	}
	start := time.Now()
	for _, p := range parts {
		if !want[p.name] {
			continue
		}
		if err := runPart(ctx, bin, p); err != nil {
			log.Fatalf("%s: %v", p.name, err)
		}
	}
	res, err := load(*out)
	if err != nil {
		log.Fatal(err)
	}
	if err := writeCSV(filepath.Join(*out, "summary.csv"), res); err != nil {
		log.Fatal(err)
	}
	if err := drawCharts(*out, res); err != nil {
		log.Fatal(err)
	}
	log.Printf("compare: done in %v; results in %s", time.Since(start).Round(time.Second), *out)
}

// runPart builds the part's program and runs it once per implementation for loadgen (which
// targets one server) or once for all (memslope and fanout take -impl lists).
func runPart(ctx context.Context, bin string, p part) error {
	exe := filepath.Join(bin, p.cmd)
	if _, err := os.Stat(exe); err != nil {
		pkg := "./cmd/" + p.cmd
		if p.cmd == "loadgen" {
			pkg = "github.com/livepoll/livepoll/cmd/loadgen"
		}
		if b, err := exec.CommandContext(ctx, "go", "build", "-o", exe, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
		}
	}
	if p.cmd != "loadgen" {
		args := append([]string{"-impl", *impls, "-json", filepath.Join(*out, p.name+".json")}, p.args...)
		return run(ctx, exe, args...)
	}
	return runLoadgen(ctx, bin, exe, p)
}

func run(ctx context.Context, exe string, args ...string) error {
	log.Printf("compare: %s %s", filepath.Base(exe), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// writeJSON writes v indented to path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeCSV writes one row per implementation and metric.
func writeCSV(path string, res *results) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"impl", "metric", "value", "unit"})
	for _, row := range res.rows() {
		_ = w.Write([]string{row.impl, row.metric, strconv.FormatFloat(row.value, 'g', 6, 64), row.unit})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
