package main

import (
	"os"
	"strings"
	"testing"
)

// testdata/run.jsonl is `go test -json ./...` of three packages: a passes, skips and fails
// a subtest; b does not compile; c passes.
func TestStream(t *testing.T) {
	f, err := os.Open("testdata/run.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	r := newReport(&out)
	if err := r.read(f); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"b/b_test.go:5:28: undefined: undefined\n", // the compiler's message
		"FAIL\texample.com/fx/b [build failed]\n",
		"    a_test.go:8: detail\n    a_test.go:8: want 1, got 2\n--- FAIL: TestFail/sub", // the whole failing output
		"FAIL\texample.com/fx/a\t",
		"ok  \texample.com/fx/c\t",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"a_test.go:5: fine", "--- PASS", "=== RUN   TestOK"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output shows %q of a passing test:\n%s", unwanted, got)
		}
	}
	if !r.failed() {
		t.Error("failed() = false after failures")
	}
}

func TestSummary(t *testing.T) {
	r, err := readFiles([]string{"testdata/run.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r.printSummary(&out)
	want := `
skipped tests:
  example.com/fx/a TestSkip: a_test.go:6: redis-server is not on PATH

failed packages:
  example.com/fx/b
  example.com/fx/a

2 passed, 2 failed, 1 skipped
`
	if out.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", out.String(), want)
	}
	if !r.failed() {
		t.Error("failed() = false after failures")
	}
}

func TestSummaryAllPassed(t *testing.T) {
	r := newReport(nil)
	for _, line := range []string{
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"pass","Package":"p"}`,
	} {
		if err := r.read(strings.NewReader(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	r.printSummary(&out)
	if out.String() != "\n1 passed, 0 failed, 0 skipped\n" || r.failed() {
		t.Errorf("summary %q, failed() = %v", out.String(), r.failed())
	}
}

// A test skipped in one run (the load test under -race) and passed in another is listed,
// marked, and still counted as a skip.
func TestSummarySkippedThenRun(t *testing.T) {
	r := newReport(nil)
	stream := `{"Action":"output","Package":"p","Test":"TestLoad","Output":"    load_test.go:9: set LOAD=1\n"}
{"Action":"skip","Package":"p","Test":"TestLoad"}
{"Action":"pass","Package":"p"}
{"Action":"pass","Package":"p","Test":"TestLoad"}
{"Action":"pass","Package":"p"}
`
	if err := r.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r.printSummary(&out)
	want := `
skipped tests:
  p TestLoad: load_test.go:9: set LOAD=1 [run in another step: passed]

1 passed, 0 failed, 1 skipped (1 of them run in another step)
`
	if out.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", out.String(), want)
	}
}
