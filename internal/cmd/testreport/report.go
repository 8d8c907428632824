package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time        time.Time
	Action      string // start, run, pause, cont, pass, fail, skip, output, bench, build-output, build-fail
	Package     string
	ImportPath  string // build-output, build-fail
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

type testKey struct{ pkg, test string }

type skipped struct {
	testKey
	reason string
}

// report follows the events of one or more go test runs. With out set it prints as it
// goes; without, it only counts (for -summary).
type report struct {
	out     io.Writer
	verbose bool // print passing tests' output too

	output   map[testKey][]string // output of tests (and packages, test "") still running
	build    map[string][]string  // build output per import path
	passed   int
	failures int // failed tests
	badPkgs  []string
	skips    []skipped
	ran      map[testKey]string // tests that passed or failed, for skips run in another step
}

func newReport(out io.Writer) *report {
	return &report{out: out, output: make(map[testKey][]string), build: make(map[string][]string), ran: make(map[testKey]string)}
}

func (r *report) failed() bool { return r.failures > 0 || len(r.badPkgs) > 0 }

// read consumes a stream of events. A line that is not JSON (go test writes some errors,
// such as a bad flag or a module problem, as plain text) is printed as it is.
func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			r.print(string(line) + "\n")
			continue
		}
		r.handle(e)
	}
	return sc.Err()
}

func (r *report) print(s string) {
	if r.out != nil {
		io.WriteString(r.out, s)
	}
}

func (r *report) handle(e event) {
	k := testKey{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		r.build[e.ImportPath] = append(r.build[e.ImportPath], e.Output)
	case "build-fail":
		r.print(strings.Join(r.build[e.ImportPath], ""))
	case "output":
		r.output[k] = append(r.output[k], e.Output)
	case "pass":
		if e.Test != "" {
			r.passed++
			r.ran[k] = "passed"
			if r.verbose {
				r.print(strings.Join(r.output[k], ""))
			}
		} else {
			r.print(packageLine(r.output[k], "ok  \t"+e.Package, e.Elapsed))
		}
		delete(r.output, k)
	case "skip":
		if e.Test != "" {
			r.skips = append(r.skips, skipped{k, skipReason(r.output[k])})
		} else {
			// A package without test files, or whose tests all were filtered out.
			r.print(packageLine(r.output[k], "?   \t"+e.Package, e.Elapsed))
		}
		delete(r.output, k)
	case "fail":
		if e.Test != "" {
			r.failures++
			r.ran[k] = "failed"
			r.print(strings.Join(r.output[k], ""))
		} else {
			r.badPkgs = append(r.badPkgs, e.Package)
			// The package's own output: a panic, a leak report from TestMain, a build
			// failure's "FAIL pkg [build failed]" line.
			r.print(strings.Join(r.output[k], ""))
			if !strings.Contains(strings.Join(r.output[k], ""), "FAIL\t"+e.Package) {
				r.print(fmt.Sprintf("FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed))
			}
		}
		delete(r.output, k)
	}
}

// packageLine is go test's own "ok pkg 1.2s" line when it is in the output, so that
// "(cached)" and coverage figures read as usual.
func packageLine(output []string, prefix string, elapsed float64) string {
	for _, l := range output {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return fmt.Sprintf("%s\t%.3fs\n", prefix, elapsed)
}

// skipReason is the last line the test logged before "--- SKIP": t.Skip's message, with
// the file:line prefix testing adds. Earlier t.Log lines are left out.
func skipReason(output []string) string {
	for i := len(output) - 1; i >= 0; i-- {
		l := strings.TrimSpace(output[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		return l
	}
	return "(no message)"
}

func readFiles(names []string) (*report, error) {
	r := newReport(nil)
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		err = r.read(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return r, nil
}

func (r *report) printSummary(w io.Writer) {
	sort.Slice(r.skips, func(i, j int) bool {
		if r.skips[i].pkg != r.skips[j].pkg {
			return r.skips[i].pkg < r.skips[j].pkg
		}
		return r.skips[i].test < r.skips[j].test
	})
	elsewhere := 0
	if len(r.skips) > 0 {
		fmt.Fprintf(w, "\nskipped tests:\n")
		for _, s := range r.skips {
			// A test skipped in one go test run and run in another (a load test skipped
			// under -race, run in its own step) is still listed, marked.
			note := ""
			if verdict, ok := r.ran[s.testKey]; ok {
				note = " [run in another step: " + verdict + "]"
				elsewhere++
			}
			fmt.Fprintf(w, "  %s %s: %s%s\n", s.pkg, s.test, s.reason, note)
		}
	}
	if len(r.badPkgs) > 0 {
		fmt.Fprintf(w, "\nfailed packages:\n")
		for _, p := range r.badPkgs {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped", r.passed, r.failures, len(r.skips))
	if elsewhere > 0 {
		fmt.Fprintf(w, " (%d of them run in another step)", elsewhere)
	}
	fmt.Fprintln(w)
}
