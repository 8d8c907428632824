// Command compare runs the whole side-by-side comparison on this machine — memory per
// idle connection, fan-out at saturation (1 and 16 messages in flight) and at a fixed
// rate, echo round trips (closed loop), connect rate, abuse, fan-out and idle memory with
// permessage-deflate (issue 11; not for mizu, which has none), and idle memory and
// fan-out over wss:// (issue 14) — for every implementation
// in bench/servers, and writes the raw results (JSON), a summary (summary.json, summary.csv), markdown
// tables (tables.md) and PNG charts to -out.
//
// Every figure comes from -runs interleaved runs (default 3): for each part, run r
// measures every implementation in turn, in an order rotated by one place per run, so
// that a slow spell on the machine does not land on one server's runs only. The summary
// gives min, median and max over the runs; a figure a program did not report in some run
// is unknown there ("?"), never zero.
//
//	cd bench && go run ./cmd/compare            # all five, 3 runs, ~75 minutes
//	cd bench && go run ./cmd/compare -quick     # a smoke run: small fleets, 2 runs (~10 minutes)
//	cd bench && go run ./cmd/compare -out ../docs/benchmarks -doc ../docs/benchmarks.md
//	                                             # the published run: tables spliced into the doc
//	cd bench && go run ./cmd/compare -only report -out DIR   # summary, tables, charts again from DIR
//
// The machine should be otherwise idle: every fan-out window reports the CPU time other
// processes took ("other cores"), and the numbers mean little when that is high.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/livepoll/livepoll/bench/internal/harness"
)

var (
	impls   = flag.String("impl", "livepoll,mizu,gorilla,nbio,gws", "comma-separated server apps (bench/servers/<impl>)")
	out     = flag.String("out", "results", "directory for JSON, CSV, markdown and PNG files")
	runs    = flag.Int("runs", 3, "interleaved runs of every part per implementation (-quick: 2 unless given)")
	quick   = flag.Bool("quick", false, "smaller fleets and shorter windows (a smoke run, not for publishing)")
	only    = flag.String("only", strings.Join(partNames, ","), "comma-separated parts to run (the summary reads every part found in -out)")
	timeout = flag.Duration("timeout", 120*time.Minute, "the whole run stops after this long")
	doc     = flag.String("doc", "", "markdown file whose <!-- tables.md:KEY --> … <!-- /tables.md:KEY --> blocks get the tables (e.g. ../docs/benchmarks.md)")
)

// part is one measurement program run for every implementation.
type part struct {
	name  string
	cmd   string   // bench command directory under cmd/, or "loadgen" (the main module's)
	args  []string // besides -impl/-json
	floor bool     // fanout: also measure the raw-TCP floor, as one more entry in each run's order
	// compress: the part measures permessage-deflate; implementations without it
	// (noCompression) are not run, and their records say why (n/a in the tables).
	compress bool
	// tls: the part measures wss://; implementations that cannot be served over TLS
	// (noTLS) are not run, and their records say why, as for compress.
	tls bool
	// variants are more implementations run in this part only (loadgen parts; see
	// variantOf), after the -impl ones.
	variants []string
}

// variantOf maps an implementation that is another way of serving one of the apps to
// the app and its extra arguments: livepoll-serve is livepoll's app accepting with
// Server.Serve on the event loop (its tuning guide's advice) instead of Handler under
// net/http (mizu's way, which the app keeps for every other part).
func variantOf(impl string) (app string, extra []string, ok bool) {
	if impl == "livepoll-serve" {
		return "livepoll", []string{"-serve"}, true
	}
	return impl, nil, false
}

// noCompression names the implementations whose library has no permessage-deflate,
// with the reason the tables give.
var noCompression = map[string]string{
	"mizu": "mizu's live has no permessage-deflate",
}

// noTLS names the implementations that cannot be served over wss://, with the reason.
// None: every servers/<impl> serves wss with -cert and -key (bench/README.md says how).
var noTLS = map[string]string{}

// skipReason says why part p does not run impl ("" if it does).
func skipReason(p part, impl string) string {
	if why, no := noCompression[impl]; no && p.compress {
		return why
	}
	if why, no := noTLS[impl]; no && p.tls {
		return why
	}
	return ""
}

// The sizes of a default run: about 75 minutes on a 2-core machine (bench/README.md).
// Memory: three sizes and 10 s of quiet per step (the slopes repeat within a few percent
// with five sizes and 20 s; three points still show a bend). Fan-out and echo windows of
// 8 s after 2 s of warm-up.
func parts() []part {
	sizes, subs, dur := "2000,10000,18000", "10000", "8s"
	quiesce := "10s"
	echoConns, connects := "1000", "10000"
	if *quick {
		sizes, subs, dur = "1000,3000", "2000", "2s"
		quiesce = "2s"
		echoConns, connects = "200", "2000"
	}
	return []part{
		{name: "memory", cmd: "memslope", args: []string{"-sizes", sizes, "-quiesce", quiesce, "-timeout", "15m"}},
		{name: "fanout", cmd: "fanout", args: []string{"-subs", subs, "-duration", dur, "-timeout", "5m"}, floor: true},
		// Saturation with 16 messages in flight: where a server can coalesce frames.
		{name: "window16", cmd: "fanout", args: []string{"-subs", subs, "-duration", dur, "-window", "16", "-timeout", "5m"}},
		{name: "latency", cmd: "fanout", args: []string{"-subs", subs, "-duration", dur, "-rate", "2", "-timeout", "5m"}},
		// Echo (issue 13): closed loop, every connection keeps one request in flight and
		// sends the next when the answer is back, so the rate is each server's round-trip
		// throughput with loadgen on the same 2 cores (no -rate: loadgen ignores it with
		// -inflight), and loadgen reports the server's CPU per round trip in the window.
		{name: "echo", cmd: "loadgen", args: []string{"-scenario", "echo", "-conns", echoConns, "-inflight", "1", "-duration", dur}},
		// Connect: handshakes as fast as 200 in flight allow.
		// livepoll is measured both ways: Handler under net/http, as everywhere, and
		// Server.Serve (livepoll-serve), which accepts on the event loop.
		{name: "connect", cmd: "loadgen", args: []string{"-scenario", "idle", "-conns", connects, "-duration", "1s", "-connect-rate", "100000"},
			variants: []string{"livepoll-serve"}},
		// Abuse (issue 10): 100 healthy clients echoing 200 requests/s in all beside 32
		// clients streaming 64 KiB echo requests, 4 that send 1 MiB requests and never read,
		// 2 ping floods and 2 churners.
		{name: "abuse", cmd: "loadgen", args: []string{"-scenario", "abuse", "-conns", "100", "-rate", "200", "-duration", dur,
			"-flooders", "32", "-nonreaders", "4", "-pingflood", "2", "-churners", "2"}},
		// Compression (issue 11): fan-out of 2 KiB JSON-like messages, 1 in flight, plain
		// and with permessage-deflate negotiated by every subscriber (the plain part is the
		// baseline of the compressed one: same frame, same window), and memory per idle
		// connection with permessage-deflate negotiated and used once.
		{name: "fanout2k", cmd: "fanout", args: []string{"-subs", subs, "-duration", dur, "-frame", "2048", "-timeout", "5m"}},
		{name: "fanoutz", cmd: "fanout", args: []string{"-subs", subs, "-duration", dur, "-frame", "2048", "-compress", "-timeout", "5m"}, compress: true},
		{name: "memoryz", cmd: "memslope", args: []string{"-sizes", sizes, "-quiesce", quiesce, "-compress", "-timeout", "15m"}, compress: true},
		// wss:// (issue 14): memory per idle connection and fan-out (1 in flight, no floor)
		// with every server app serving TLS its library's way, the same sizes as memory
		// and fanout; the clients are crypto/tls connections with a reader goroutine each
		// (only the servers are measured).
		{name: "memorytls", cmd: "memslope", args: []string{"-sizes", sizes, "-quiesce", quiesce, "-tls", "-timeout", "15m"}, tls: true},
		{name: "fanouttls", cmd: "fanout", args: []string{"-subs", subs, "-duration", dur, "-tls", "-timeout", "5m"}, tls: true},
	}
}

func main() {
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick && !set["runs"] {
		*runs = 2
	}
	if *runs < 1 {
		log.Fatal("-runs must be at least 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	bin, err := os.MkdirTemp("", "compare-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(bin)
	m, err := describe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("compare: %s at %s (dirty %v), %s", m.Command, m.Commit, m.Dirty, m.GoVersion)

	want := map[string]bool{}
	for p := range strings.SplitSeq(*only, ",") {
		p = strings.TrimSpace(p)
		if p != "report" && !slices.Contains(partNames, p) {
			log.Fatalf("-only: unknown part %q (parts: %s; or report: only rewrite the summary from -out)", p, strings.Join(partNames, ","))
		}
		want[p] = true
	}
	start := time.Now()
	for _, p := range parts() {
		if !want[p.name] {
			continue
		}
		t0 := time.Now()
		recs, err := runPart(ctx, bin, p)
		if err != nil {
			log.Fatalf("%s: %v", p.name, err)
		}
		pm := m
		pm.Part, pm.Args, pm.Seconds = p.name, p.args, time.Since(t0).Seconds()
		if err := writeJSON(filepath.Join(*out, p.name+".json"), partFile{Meta: pm, Records: recs}); err != nil {
			log.Fatal(err)
		}
		log.Printf("compare: %s done in %v", p.name, time.Since(t0).Round(time.Second))
	}
	if err := report(*out, *doc); err != nil {
		log.Fatal(err)
	}
	log.Printf("compare: done in %v; results in %s", time.Since(start).Round(time.Second), *out)
}

// meta says what produced a part's file, so a reader can regenerate it.
type meta struct {
	Part      string    `json:"part"`
	Command   string    `json:"command"` // as typed, from bench/
	Args      []string  `json:"part_args"`
	Commit    string    `json:"commit"`
	Dirty     bool      `json:"dirty"` // uncommitted changes outside -out when the run started
	GoVersion string    `json:"go_version"`
	Kernel    string    `json:"kernel"`
	CPUs      int       `json:"cpus"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"` // this part's wall time
	Runs      int       `json:"runs"`
	Impls     []string  `json:"impls"`
}

// partFile is <out>/<part>.json.
type partFile struct {
	Meta    meta     `json:"meta"`
	Records []record `json:"records"`
}

// record is one program run for one implementation.
type record struct {
	Run      int             `json:"run"`      // 1..-runs
	Position int             `json:"position"` // place in this run's order, from 1
	Impl     string          `json:"impl"`
	Started  time.Time       `json:"started"`
	Seconds  float64         `json:"seconds"`
	Error    string          `json:"error,omitempty"`
	Skipped  string          `json:"skipped,omitempty"` // not run, and why (a compression or wss part, a library without it)
	Result   json.RawMessage `json:"result,omitempty"`  // the program's own JSON for this implementation
}

// order is run r's (from 1) order of the implementations: rotated by r-1 places.
func order(names []string, r int) []string {
	n := len(names)
	o := make([]string, 0, n)
	for i := range n {
		o = append(o, names[(i+r-1)%n])
	}
	return o
}

func implList() []string {
	var l []string
	for s := range strings.SplitSeq(*impls, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l = append(l, s)
		}
	}
	return l
}

// runPart runs p -runs times for every implementation (and the floor), interleaved.
// A failed program run is recorded with its error and the part goes on.
func runPart(ctx context.Context, bin string, p part) ([]record, error) {
	exe := filepath.Join(bin, p.cmd)
	if _, err := os.Stat(exe); err != nil {
		build := exec.CommandContext(ctx, "go", "build", "-o", exe, "./cmd/"+p.cmd)
		if p.cmd == "loadgen" {
			build.Dir = ".." // the main module's: built with its own go.mod and go.sum
		}
		if b, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", p.cmd, err, b)
		}
	}
	var names, skipped []string
	for _, impl := range implList() {
		if skipReason(p, impl) != "" {
			skipped = append(skipped, impl)
			continue
		}
		names = append(names, impl)
	}
	if slices.Contains(names, "livepoll") {
		names = append(names, p.variants...)
	}
	if p.floor {
		names = append(names, "floor")
	}
	var recs []record
	for r := 1; r <= *runs; r++ {
		for _, impl := range skipped {
			recs = append(recs, record{Run: r, Impl: impl, Skipped: skipReason(p, impl)})
		}
		for pos, impl := range order(names, r) {
			if err := ctx.Err(); err != nil {
				return recs, err
			}
			log.Printf("compare: %s run %d/%d: %s", p.name, r, *runs, impl)
			rec := record{Run: r, Position: pos + 1, Impl: impl, Started: time.Now().UTC()}
			res, err := runOne(ctx, bin, exe, p, impl, fmt.Sprintf("%s-%d-%s.json", p.name, r, impl))
			rec.Seconds = time.Since(rec.Started).Seconds()
			rec.Result = res
			if err != nil {
				rec.Error = err.Error()
				log.Printf("compare: %s run %d %s FAILED: %v", p.name, r, impl, err)
			}
			recs = append(recs, rec)
		}
	}
	return recs, nil
}

// runOne runs the part's program for one implementation and returns its JSON
// for that implementation.
func runOne(ctx context.Context, bin, exe string, p part, impl, file string) (json.RawMessage, error) {
	path := filepath.Join(bin, file)
	if p.cmd == "loadgen" {
		return runLoadgen(ctx, bin, exe, p, impl, path)
	}
	args := append([]string{"-json", path}, p.args...)
	switch {
	case impl == "floor":
		args = append(args, "-impl=", "-floor=true")
	case p.cmd == "fanout":
		args = append(args, "-impl", impl, "-floor=false")
	default:
		args = append(args, "-impl", impl)
	}
	if err := run(ctx, exe, args...); err != nil {
		return nil, err
	}
	if p.cmd == "memslope" {
		keepProfile(path, impl)
	}
	var list []json.RawMessage
	if err := readJSON(path, &list); err != nil {
		return nil, err
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("%s: %d results, want 1", file, len(list))
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(list[0], &e)
	if e.Error != "" {
		return list[0], fmt.Errorf("%s", e.Error)
	}
	return list[0], nil
}

// keepProfile copies the heap profile memslope wrote beside its JSON (at the largest
// fleet) to -out/profiles, where it outlives the run's temporary directory:
// memory-<run>-<impl>.heap.pb.gz, to read with go tool pprof (-diff_base between two).
func keepProfile(jsonPath, impl string) {
	src := strings.TrimSuffix(jsonPath, ".json") + "." + impl + ".heap.pb.gz"
	b, err := os.ReadFile(src)
	if err != nil {
		log.Printf("compare: no heap profile from memslope for %s: %v", impl, err)
		return
	}
	dir := filepath.Join(*out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(dir, strings.TrimSuffix(filepath.Base(jsonPath), ".json")+".heap.pb.gz"), b, 0o644)
	}
	if err != nil {
		log.Printf("compare: keeping the heap profile of %s: %v", impl, err)
	}
}

// runLoadgen starts impl's server and points cmd/loadgen at it.
func runLoadgen(ctx context.Context, bin, exe string, p part, impl, report string) (json.RawMessage, error) {
	dir, err := harness.BenchDir()
	if err != nil {
		return nil, err
	}
	app, extra, variant := variantOf(impl)
	srvBin, err := harness.Build(ctx, dir, app, bin)
	if err != nil {
		return nil, err
	}
	start := harness.StartServer
	if variant {
		start = harness.StartServerApart
	}
	srv, err := start(srvBin, filepath.Join(bin, impl+".log"), 10*time.Minute, extra...)
	if err != nil {
		return nil, err
	}
	args := append([]string{"-url", srv.URL(), "-json", report}, p.args...)
	if srv.StatsAddr != srv.Addr {
		args = append(args, "-stats", "http://"+srv.StatsAddr+"/stats")
	}
	err = run(ctx, exe, args...)
	srv.Stop(2 * time.Second)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	return raw, readJSON(report, &raw)
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
