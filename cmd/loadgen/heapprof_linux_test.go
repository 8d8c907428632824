//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/pprof/profile"
)

// heapProfile builds a heap profile whose samples allocated inuse bytes through the
// given stacks (innermost first).
func heapProfile(t *testing.T, samples map[int64][]string) []byte {
	t.Helper()
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}, {Type: "inuse_space", Unit: "bytes"}},
		PeriodType: &profile.ValueType{Type: "space", Unit: "bytes"},
	}
	funcs := map[string]*profile.Function{}
	for inuse, stack := range samples {
		s := &profile.Sample{Value: []int64{2 * inuse, inuse}}
		for _, name := range stack {
			f := funcs[name]
			if f == nil {
				f = &profile.Function{ID: uint64(len(funcs) + 1), Name: name, Filename: name + ".go"}
				funcs[name] = f
				p.Function = append(p.Function, f)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: f, Line: 7}}}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSummarizeHeap(t *testing.T) {
	t.Parallel()
	data := heapProfile(t, map[int64][]string{
		6000: {"runtime.mallocgc", "runtime.newobject", "app.newSession", "main.main"},
		3000: {"runtime.mallocgc", "runtime.growslice", "app.subscribe", "main.main"},
		1000: {"runtime.mallocgc", "runtime.newobject", "runtime.malg", "runtime.newproc1", "runtime.systemstack"}, // the runtime's own
		500:  {"runtime.mallocgc", "runtime.growslice"},                                                            // allocators only
		0:    {"app.freed"},
	})
	rep, err := summarizeHeap(data, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.InuseBytes != 10500 || rep.PerConnBytes != 105 || len(rep.Top) != 2 {
		t.Fatalf("summary %+v", rep)
	}
	if s := rep.Top[0]; s.Function != "app.newSession" || s.InuseBytes != 6000 || s.PerConnBytes != 60 || s.Share != 6000.0/10500 || s.Location != "app.newSession.go:7" {
		t.Errorf("top site %+v", s)
	}
	if s := rep.Top[1]; s.Function != "app.subscribe" || s.PerConnBytes != 30 {
		t.Errorf("second site %+v", s)
	}
	all, _ := summarizeHeap(data, 100, 10)
	if len(all.Top) != 4 || all.Top[2].Function != "runtime.malg" || all.Top[3].Function != "runtime.mallocgc" {
		t.Errorf("all sites %+v", all.Top)
	}
	if _, err := summarizeHeap([]byte("not a profile"), 1, 1); err == nil {
		t.Error("garbage parsed")
	}
}

func TestPprofURLFor(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:9090/stats": "http://127.0.0.1:9090/debug/pprof/heap",
		"ws://localhost:8080/ws":      "http://localhost:8080/debug/pprof/heap",
		"::":                          "",
	} {
		if got := pprofURLFor(in); got != want {
			t.Errorf("pprofURLFor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeapProfileOfOwnServer(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "heap.pb.gz")
	r := runLoadgen(t, "-scenario", "subscribe", "-conns", "300", "-duration", "200ms", "-progress", "0", "-heap-profile", file)
	h := r.HeapProfile
	if h == nil {
		t.Fatalf("no heap profile: %s", r.HeapProfileError)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := profile.ParseData(data); err != nil {
		t.Fatalf("the written profile does not parse: %v", err)
	}
	if h.File != file || h.Conns != 300 || h.InuseBytes <= 0 || len(h.Top) == 0 || h.Top[0].InuseBytes <= 0 {
		t.Fatalf("heap profile report %+v", *h)
	}
	var out bytes.Buffer
	r.print(&out)
	if !bytes.Contains(out.Bytes(), []byte("server heap profile")) || !bytes.Contains(out.Bytes(), []byte(h.Top[0].Function)) {
		t.Errorf("the table does not show the heap profile:\n%s", out.String())
	}
}

func TestHeapProfileFailureIsReported(t *testing.T) {
	t.Parallel()
	url := startFaultyServer(t, &faultyServer{}) // serves no /debug/pprof
	r := runLoadgen(t, "-url", url, "-stats", "none", "-scenario", "idle", "-conns", "5", "-duration", "100ms",
		"-progress", "0", "-heap-profile", filepath.Join(t.TempDir(), "heap.pb.gz"))
	if r.HeapProfile != nil || r.HeapProfileError == "" {
		t.Errorf("heap profile %+v, error %q: want the failure reported", r.HeapProfile, r.HeapProfileError)
	}
}
