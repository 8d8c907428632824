package slope

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/livepoll/livepoll/internal/kmem"
	"github.com/livepoll/livepoll/internal/srvstats"
)

func TestSample(t *testing.T) {
	readings := []srvstats.Snapshot{
		{RSSBytes: 30, HeapInuse: 5, StackInuse: 5, Goroutines: 4, FDs: 9},
		{RSSBytes: 10, HeapInuse: 9, StackInuse: 9, Goroutines: 2, FDs: 8},
		{RSSBytes: 20, HeapInuse: 4, StackInuse: 1, Goroutines: 3, FDs: 7},
	}
	reader := func(fail int) func() (int, srvstats.Snapshot, error) {
		i := 0
		return func() (int, srvstats.Snapshot, error) {
			if i == fail {
				return 0, srvstats.Snapshot{}, errors.New("fail")
			}
			i++
			return i, readings[i-1], nil
		}
	}
	last, err := Sample(7, LastCounts, reader(-1))
	if err != nil || last.Conns != 7 || last.RSS != 10 || last.HeapStack != 5 || last.Goroutines != 3 || last.FDs != 7 || len(last.Samples) != 3 {
		t.Errorf("LastCounts: %+v, %v", last, err)
	}
	mins, err := Sample(7, MinCounts, reader(-1))
	if err != nil || mins.RSS != 10 || mins.HeapStack != 5 || mins.Goroutines != 2 || mins.FDs != 7 {
		t.Errorf("MinCounts: %+v, %v", mins, err)
	}
	part, err := Sample(7, MinCounts, reader(2))
	if err == nil || len(part.Samples) != 2 || part.RSS != 10 {
		t.Errorf("error at the third reading: %+v, %v", part, err)
	}
}

func TestFit(t *testing.T) {
	var r Result[int]
	for _, n := range []int{1000, 2000, 3000} {
		r.Steps = append(r.Steps, Step[int]{Conns: n, RSS: uint64(5000 + 40*n), HeapStack: uint64(100 + 30*n), Goroutines: 3 + 2*n, FDs: 9 + n})
	}
	rssBase, hsBase := r.Fit()
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if !near(r.RSSPerConn, 40) || !near(rssBase, 5000) || !near(r.HeapStackPerConn, 30) || !near(hsBase, 100) ||
		!near(r.GoroutinesPerConn, 2) || !near(r.FDsPerConn, 1) || !r.Fitted() {
		t.Errorf("Fit: %+v, baselines %v %v", r, rssBase, hsBase)
	}
}

func TestFitKernel(t *testing.T) {
	var r Result[int]
	for _, n := range []int{1000, 2000, 3000} {
		k := kmem.Snapshot{TCPMemBytes: int64(4096 + n), Slab: map[string]int64{"TCP": int64(9000 + 4700*n), "filp": int64(300 * n)}}
		k.SlabBytes = k.Slab["TCP"] + k.Slab["filp"]
		r.Steps = append(r.Steps, Step[int]{Conns: n, RSS: uint64(40 * n), Kernel: &k})
	}
	r.Fit()
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if !near(r.KernelPerConn, 5001) || !near(r.KernelPerEnd, 2500.5) || !near(r.KernelBuffersPerConn, 1) ||
		!near(r.KernelSlabPerConn["TCP"], 4700) || !near(r.KernelSlabPerConn["filp"], 300) || r.KernelNote != "" {
		t.Errorf("kernel fit: %+v", r)
	}
	var out bytes.Buffer
	PrintTable(&out, "impl\t", []Row[int]{{Name: "x", Result: &r}}, func(map[string]*Result[int]) string { return "" })
	if !strings.Contains(out.String(), "kernel B/conn pair") || !strings.Contains(out.String(), "5001") {
		t.Errorf("table without the kernel column:\n%s", out.String())
	}

	r.Steps[1].Kernel, r.Steps[1].KernelError = nil, "no /proc"
	r.KernelSlabPerConn = nil
	r.KernelPerConn = 0
	r.Fit()
	if r.KernelPerConn != 0 || !strings.Contains(r.KernelNote, "no /proc") {
		t.Errorf("a step without a kernel reading: %+v", r)
	}
}

func TestSampleReadsTheKernel(t *testing.T) {
	st, err := Sample(1, LastCounts, func() (int, srvstats.Snapshot, error) { return 0, srvstats.Snapshot{}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if (st.Kernel == nil) == (st.KernelError == "") {
		t.Errorf("kernel %+v, error %q: want exactly one", st.Kernel, st.KernelError)
	}
}
