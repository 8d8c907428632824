package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func f(v float64) *float64 { return &v }

func TestSummarise(t *testing.T) {
	for _, tc := range []struct {
		name             string
		values           []*float64
		known            int
		min, median, max float64
	}{
		{"odd", []*float64{f(3), f(1), f(2)}, 3, 1, 2, 3},
		{"even", []*float64{f(4), f(1), f(2), f(10)}, 4, 1, 3, 10},
		{"one", []*float64{f(7)}, 1, 7, 7, 7},
		{"unknown runs left out", []*float64{nil, f(5), nil, f(9), f(6)}, 3, 5, 6, 9},
		{"negative kept", []*float64{f(-0.02), f(0.01), f(0)}, 3, -0.02, 0, 0.01},
	} {
		s := summarise("x", "m", "", tc.values)
		if s.Runs != len(tc.values) || s.Known != tc.known || s.Min != tc.min || s.Median != tc.median || s.Max != tc.max {
			t.Errorf("%s: got runs %d known %d min %v median %v max %v, want %d %d %v %v %v", tc.name,
				s.Runs, s.Known, s.Min, s.Median, s.Max, len(tc.values), tc.known, tc.min, tc.median, tc.max)
		}
	}
	s := summarise("x", "m", "", []*float64{nil, nil, nil})
	if s.ok() || cell(s, intFmt) != "?" {
		t.Errorf("all unknown: ok %v, cell %q; want false, ?", s.ok(), cell(s, intFmt))
	}
}

func TestCell(t *testing.T) {
	for _, tc := range []struct {
		values []*float64
		want   string
	}{
		{[]*float64{f(1200), f(1000), f(1100)}, "1,100 (1,000–1,200)"},
		{[]*float64{f(0), f(0), f(0)}, "0"},
		{[]*float64{f(0), nil, f(485)}, "243 (0–485) [2 of 3 runs]"},
		{[]*float64{f(-3), f(-1), f(2)}, "-1 (-3 to 2)"},
	} {
		if got := cell(summarise("x", "m", "", tc.values), intFmt); got != tc.want {
			t.Errorf("cell(%v) = %q, want %q", tc.values, got, tc.want)
		}
	}
}

// A loadgen report without unanswered or server_closed_by leaves them
// unknown; a reason missing from a run whose report had the map is zero.
func TestMissingFields(t *testing.T) {
	var old, withBy, emptyBy map[string]any
	mustJSON(t, `{"load":{"deliveries_per_sec":100,"lost":0,"sent":10},"connections":{"server_closed":0}}`, &old)
	mustJSON(t, `{"load":{"deliveries_per_sec":90,"lost":0,"unanswered":4,"sent":10},"connections":{"server_closed":3,"server_closed_by":{"reset":3}}}`, &withBy)
	mustJSON(t, `{"load":{"deliveries_per_sec":95,"lost":1,"unanswered":0,"sent":10},"connections":{"server_closed":0,"server_closed_by":{}}}`, &emptyBy)
	var runs []map[string]float64
	var present []map[string]bool
	for _, r := range []map[string]any{old, withBy, emptyBy} {
		m, p := extract("echo", r)
		runs, present = append(runs, m), append(present, p)
	}
	var st stats
	for _, s := range fromRuns("gorilla", units, runs, present) {
		st.add(s)
	}
	check := func(metric string, known int, median float64) {
		t.Helper()
		s := st.get("gorilla", metric)
		if s.Runs != 3 || s.Known != known || (known > 0 && s.Median != median) {
			t.Errorf("%s: runs %d known %d median %v, want 3 %d %v", metric, s.Runs, s.Known, s.Median, known, median)
		}
	}
	check("echo.per_sec", 3, 95)
	check("echo.unanswered", 2, 2)
	check("echo.server_closed_by.reset", 2, 1.5) // 3 and 0 (map present without the reason); unknown in the old run
	check("echo.server_closed_by", 2, 1.5)
	if u := st.get("gorilla", "echo.server_closed_by.reset").Unit; u != "connections" {
		t.Errorf("by-reason unit %q", u)
	}
	if got := byReason(&st, "gorilla"); got != "reset 2 (0–3) [2 of 3 runs]" {
		t.Errorf("byReason = %q", got)
	}
	// A report with no such fields at all: "?" everywhere.
	var none map[string]any
	mustJSON(t, `{"load":{"deliveries_per_sec":100}}`, &none)
	m, p := extract("echo", none)
	var st2 stats
	for _, s := range fromRuns("mizu", units, []map[string]float64{m}, []map[string]bool{p}) {
		st2.add(s)
	}
	st2.runs("mizu", 1)
	if got := byReason(&st2, "mizu"); got != "?" {
		t.Errorf("byReason without the map = %q, want ?", got)
	}
	if got := cell(st2.get("mizu", "echo.unanswered"), intFmt); got != "?" {
		t.Errorf("unanswered without the field = %q, want ?", got)
	}
	// A failed run reports nothing.
	var failed map[string]any
	mustJSON(t, `{"error":"boom","deliveries_per_sec":5}`, &failed)
	if m, _ := extract("fanout", failed); len(m) != 0 {
		t.Errorf("failed run gave %v", m)
	}
}

func TestOrderRotates(t *testing.T) {
	names := []string{"a", "b", "c"}
	for r, want := range []string{"a,b,c", "b,c,a", "c,a,b", "a,b,c"} {
		if got := strings.Join(order(names, r+1), ","); got != want {
			t.Errorf("run %d: %s, want %s", r+1, got, want)
		}
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
}

// The results committed in docs/benchmarks (one run per server, written before
// -runs) are put in the current layout as run 1 of each part and reported:
// a change in what memslope, fanout or loadgen write that compare no longer
// reads fails here, and gorilla's closed connections must reach the tables.
// TestReportOfCommittedRun rebuilds the summary, the tables and the charts from the JSON
// committed in docs/benchmarks: every figure of every server is there from all three
// runs, the losses are known (not "?"), and the tables come out exactly as committed, so
// docs/benchmarks.md quotes what the files say.
func TestReportOfCommittedRun(t *testing.T) {
	src := filepath.Join("..", "..", "..", "docs", "benchmarks")
	dir := t.TempDir()
	for _, part := range partNames {
		b, err := os.ReadFile(filepath.Join(src, part+".json"))
		if errors.Is(err, fs.ErrNotExist) && (slices.Contains(compressionParts, part) || slices.Contains(tlsParts, part)) {
			continue // not published yet: their tables are left out (TestCompressionParts, TestTLSParts)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, part+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := report(dir, ""); err != nil {
		t.Fatal(err)
	}
	s, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	impls := []string{"livepoll", "mizu", "gorilla", "nbio", "gws"}
	for _, metric := range []string{"rss_per_conn", "fanout.per_sec", "window16.per_sec", "latency.p99", "echo.per_sec",
		"connect.per_sec", "abuse.p99", "abuse.peak_heap"} {
		for _, impl := range impls {
			if st := s.st.get(impl, metric); st.Known != 3 || st.Median <= 0 {
				t.Errorf("%s %s: %+v", impl, metric, st)
			}
		}
	}
	for _, metric := range []string{"fanout.lost", "echo.lost", "echo.unanswered", "echo.server_closed_by", "abuse.lost"} {
		for _, impl := range impls {
			if st := s.st.get(impl, metric); st.Known != 3 {
				t.Errorf("%s %s is not known from every run: %+v", impl, metric, st)
			}
		}
	}
	// Once published, the compression parts must have every figure from every run, but
	// for the servers without compression, which must be n/a with a reason.
	for _, metric := range []string{"fanout2k.cpu_us", "fanout2k.wire_bytes", "fanout2k.lost", "fanoutz.cpu_us",
		"fanoutz.wire_bytes", "fanoutz.compressed", "fanoutz.lost", "memoryz.rss_per_conn", "memoryz.compressed_echoes"} {
		part, _, _ := strings.Cut(metric, ".")
		if !slices.ContainsFunc(s.Parts, func(m meta) bool { return m.Part == part }) {
			continue
		}
		for _, impl := range impls {
			st := s.st.get(impl, metric)
			if _, no := noCompression[impl]; no && part != "fanout2k" {
				if st.Known != 0 || s.st.why(metric, impl) == "" {
					t.Errorf("%s %s: want n/a with a reason, got %+v", impl, metric, st)
				}
				continue
			}
			if st.Known != 3 {
				t.Errorf("%s %s is not known from every run: %+v", impl, metric, st)
			}
		}
	}
	// Likewise the wss parts, for every server (noTLS is empty: all five serve wss).
	for _, metric := range []string{"memorytls.rss_per_conn", "memorytls.goroutines_per_conn", "fanouttls.cpu_us",
		"fanouttls.per_sec", "fanouttls.lost", "fanouttls.closed"} {
		part, _, _ := strings.Cut(metric, ".")
		if !slices.ContainsFunc(s.Parts, func(m meta) bool { return m.Part == part }) {
			continue
		}
		for _, impl := range impls {
			st := s.st.get(impl, metric)
			if _, no := noTLS[impl]; no {
				if st.Known != 0 || s.st.why(metric, impl) == "" {
					t.Errorf("%s %s: want n/a with a reason, got %+v", impl, metric, st)
				}
				continue
			}
			if st.Known != 3 {
				t.Errorf("%s %s is not known from every run: %+v", impl, metric, st)
			}
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "tables.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(src, "tables.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("tables.md rebuilt from the committed JSON differs from the committed one:\n%s", got)
	}
	// docs/benchmarks.md quotes every table as it is rebuilt.
	doc, err := os.ReadFile(filepath.Join(src, "..", "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	spliced, stale, err := splice(string(doc), sections(s))
	if err != nil || len(stale) > 0 || spliced != string(doc) {
		t.Errorf("docs/benchmarks.md does not quote the rebuilt tables (stale markers %v, error %v)", stale, err)
	}
	wantCharts(t, dir, "summary.json", "summary.csv", "memory.png", "goroutines-fds.png", "fanout.png",
		"window16.png", "cpu.png", "latency.png", "echo.png", "losses.png", "connect.png", "abuse.png", "abuse-memory.png")
	if os.Getenv("COMPARE_KEEP") != "" {
		_ = os.CopyFS(os.Getenv("COMPARE_KEEP"), os.DirFS(dir))
	}
}

func TestSplice(t *testing.T) {
	doc := "# T\n\nprose\n\n<!-- tables.md:memory -->\nold table\n<!-- /tables.md:memory -->\n\nmore\n\n" +
		"<!-- tables.md:gone -->\nkept\n<!-- /tables.md:gone -->\n<!-- tables.md:echo -->\n<!-- /tables.md:echo -->\nend\n"
	got, stale, err := splice(doc, []section{{key: "memory", body: "| a |\n|---|\n| 1 |\n"}, {key: "echo", body: "E\n"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "# T\n\nprose\n\n<!-- tables.md:memory -->\n| a |\n|---|\n| 1 |\n<!-- /tables.md:memory -->\n\nmore\n\n" +
		"<!-- tables.md:gone -->\nkept\n<!-- /tables.md:gone -->\n<!-- tables.md:echo -->\nE\n<!-- /tables.md:echo -->\nend\n"
	if got != want {
		t.Errorf("splice:\n%s\nwant:\n%s", got, want)
	}
	if len(stale) != 1 || stale[0] != "gone" {
		t.Errorf("stale = %v, want [gone]", stale)
	}
	// Splicing again gives the same text.
	if again, _, _ := splice(got, []section{{key: "memory", body: "| a |\n|---|\n| 1 |\n"}, {key: "echo", body: "E\n"}}); again != got {
		t.Errorf("second splice changed the text:\n%s", again)
	}
	if _, _, err := splice("<!-- tables.md:x -->\nno end\n", nil); err == nil {
		t.Error("a marker without its end: no error")
	}
}
