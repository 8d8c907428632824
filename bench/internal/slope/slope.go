// Package slope is the measuring part that cmd/memslope and cmd/tlsmem
// share. A run grows a fleet of idle connections in steps (Grow) and reads
// the server's /stats three times at each (Sample); the least-squares slopes of
// the minima against the connection count are what one connection costs
// (Result.Fit); PrintTable prints the runs side by side.
package slope

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/internal/kmem"
	"github.com/livepoll/livepoll/internal/srvstats"
)

// Step is one measured connection count. S is the type of a /stats reading.
type Step[S any] struct {
	Conns      int    `json:"conns"`
	RSS        uint64 `json:"rss_bytes"`  // minimum of three samples
	HeapStack  uint64 `json:"heap_stack"` // heap_inuse+stack_inuse, minimum of three
	Goroutines int    `json:"goroutines"` // of the last sample or the minimum (Counts)
	FDs        int    `json:"fds"`        // likewise
	Samples    []S    `json:"samples"`
	// Kernel is the host kernel's socket memory read after the samples (nil if it could
	// not be read; see KernelError). Host-wide: both ends of each connection are in it.
	Kernel      *kmem.Snapshot `json:"kernel,omitempty"`
	KernelError string         `json:"kernel_error,omitempty"`
}

// KernelEnds is how many socket ends of each connection the kernel figures hold: the
// commands run their client fleet on the server's host, over loopback, so both.
const KernelEnds = 2

// Counts says which goroutine and fd counts Sample keeps.
type Counts int

const (
	LastCounts Counts = iota // those of the last sample
	MinCounts                // the minima of the three samples
)

// Sample reads a step's three samples of /stats through read, which returns
// a reading and the srvstats figures in it, or an error (also for a reading
// whose session count is not n). It keeps the minima of RSS and heap+stack,
// and the goroutine and fd counts as counts says. On an error the Step holds
// the samples read before it.
func Sample[S any](n int, counts Counts, read func() (S, srvstats.Snapshot, error)) (Step[S], error) {
	st := Step[S]{Conns: n}
	for i := range 3 {
		s, f, err := read()
		if err != nil {
			return st, err
		}
		hs := f.HeapInuse + f.StackInuse
		if i == 0 {
			st.RSS, st.HeapStack, st.Goroutines, st.FDs = f.RSSBytes, hs, f.Goroutines, f.FDs
		}
		st.RSS, st.HeapStack = min(st.RSS, f.RSSBytes), min(st.HeapStack, hs)
		if counts == MinCounts {
			st.Goroutines, st.FDs = min(st.Goroutines, f.Goroutines), min(st.FDs, f.FDs)
		} else {
			st.Goroutines, st.FDs = f.Goroutines, f.FDs
		}
		st.Samples = append(st.Samples, s)
	}
	if k, err := kmem.Read(); err != nil {
		st.KernelError = err.Error()
	} else {
		st.Kernel = &k
	}
	return st, nil
}

// Grow asks the client fleet for n connections in all and waits until it
// holds them: at most n/rate plus two minutes. The fleet is a child that
// reads a connection count per line and answers "ok …" (or "err …").
func Grow(client *harness.Piped, n, rate int) error {
	fmt.Fprintf(client.Stdin, "%d\n", n)
	within := time.Duration(n)*time.Second/time.Duration(max(rate, 1)) + 2*time.Minute
	select {
	case line, ok := <-client.Replies:
		if !ok {
			return fmt.Errorf("client exited at step %d; client stderr:\n%s", n, client.LogTail(10))
		}
		if !strings.HasPrefix(line, "ok") {
			return fmt.Errorf("client at step %d: %s", n, line)
		}
		return nil
	case <-time.After(within):
		return fmt.Errorf("client did not open %d connections within %v", n, within)
	}
}

// Result is one run: its steps and what one connection costs. The commands
// embed it after the run's name (impl, kind).
type Result[S any] struct {
	Idle              Step[S]   `json:"idle"` // before any connection
	Steps             []Step[S] `json:"steps"`
	RSSPerConn        float64   `json:"rss_bytes_per_conn"`
	HeapStackPerConn  float64   `json:"heap_stack_bytes_per_conn"`
	GoroutinesPerConn float64   `json:"goroutines_per_conn"`
	FDsPerConn        float64   `json:"fds_per_conn"`
	// The kernel's socket memory per connection, slopes like RSS's, for both ends of a
	// loopback connection (KernelEnds); one end's is KernelPerEnd. Zero when a step has
	// no kernel reading; KernelNote says why, or why the slab part is missing.
	KernelPerConn        float64            `json:"kernel_bytes_per_conn"`
	KernelPerEnd         float64            `json:"kernel_bytes_per_end"`
	KernelBuffersPerConn float64            `json:"kernel_buffer_bytes_per_conn"`
	KernelSlabPerConn    map[string]float64 `json:"kernel_slab_bytes_per_conn,omitempty"` // by slab cache
	KernelNote           string             `json:"kernel_note,omitempty"`
	Error                string             `json:"error,omitempty"`
}

// Fit sets the per-connection figures: the least-squares slopes of the
// steps' figures against their connection counts. It returns the
// intercepts of RSS and heap+stack, the baselines.
func (r *Result[S]) Fit() (rssBaseline, heapStackBaseline float64) {
	var xs, rss, hs, gs, fds []float64
	for _, st := range r.Steps {
		xs = append(xs, float64(st.Conns))
		rss = append(rss, float64(st.RSS))
		hs = append(hs, float64(st.HeapStack))
		gs = append(gs, float64(st.Goroutines))
		fds = append(fds, float64(st.FDs))
	}
	r.RSSPerConn, rssBaseline = harness.Fit(xs, rss)
	r.HeapStackPerConn, heapStackBaseline = harness.Fit(xs, hs)
	r.GoroutinesPerConn, _ = harness.Fit(xs, gs)
	r.FDsPerConn, _ = harness.Fit(xs, fds)
	r.fitKernel(xs)
	return rssBaseline, heapStackBaseline
}

// fitKernel sets the kernel slopes when every step has a kernel reading.
func (r *Result[S]) fitKernel(xs []float64) {
	var total, buffers []float64
	caches := map[string][]float64{}
	for _, st := range r.Steps {
		if st.Kernel == nil {
			r.KernelNote = fmt.Sprintf("no kernel reading at %d connections: %s", st.Conns, st.KernelError)
			return
		}
		total = append(total, float64(st.Kernel.Total()))
		buffers = append(buffers, float64(st.Kernel.TCPMemBytes))
		if st.Kernel.SlabError != "" {
			r.KernelNote = st.Kernel.SlabError
		}
		for c, v := range st.Kernel.Slab {
			caches[c] = append(caches[c], float64(v))
		}
	}
	if len(xs) < 2 {
		return
	}
	r.KernelPerConn, _ = harness.Fit(xs, total)
	r.KernelPerEnd = r.KernelPerConn / KernelEnds
	r.KernelBuffersPerConn, _ = harness.Fit(xs, buffers)
	if r.KernelNote != "" {
		return
	}
	r.KernelSlabPerConn = map[string]float64{}
	for c, ys := range caches {
		if len(ys) == len(xs) {
			r.KernelSlabPerConn[c], _ = harness.Fit(xs, ys)
		}
	}
}

// Fitted reports whether r has per-connection figures: it did not fail and
// has two steps at least.
func (r *Result[S]) Fitted() bool {
	return r.Error == "" && len(r.Steps) >= 2
}

// MiB is b in MiB.
func MiB(b uint64) float64 { return float64(b) / (1 << 20) }

// Row is a run's line in the table.
type Row[S any] struct {
	Name   string // impl or kind: the first cell, and the name in a failure line
	Cells  string // the cells between the name and the per-connection figures, each ending in a tab
	Result *Result[S]
}

// PrintTable writes the table to w: header (the columns of the name and
// the Cells, each ending in a tab), the per-connection columns, and a line
// per row (FAILED for a run without per-connection figures). Then the line
// compare returns, if any (it gets the fitted runs by name), and a line per
// failed run.
func PrintTable[S any](w io.Writer, header string, rows []Row[S], compare func(fitted map[string]*Result[S]) string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	kernel := false // a column for the kernel figures when some run has them
	for _, row := range rows {
		kernel = kernel || (row.Result.Fitted() && row.Result.KernelPerConn != 0)
	}
	kernelHeader := ""
	if kernel {
		kernelHeader = "kernel B/conn pair\t"
	}
	fmt.Fprint(tw, header, "RSS B/conn\theap+stack B/conn\tgoroutines/conn\tfds/conn\t", kernelHeader, "\n")
	fitted := map[string]*Result[S]{}
	for _, row := range rows {
		r := row.Result
		fmt.Fprintf(tw, "%s\t%s", row.Name, row.Cells)
		if !r.Fitted() {
			fmt.Fprint(tw, "FAILED\t-\t-\t-\t\n")
			continue
		}
		fitted[row.Name] = r
		fmt.Fprintf(tw, "%.0f\t%.0f\t%.2f\t%.2f\t", r.RSSPerConn, r.HeapStackPerConn, r.GoroutinesPerConn, r.FDsPerConn)
		switch {
		case !kernel:
		case r.KernelPerConn == 0:
			fmt.Fprint(tw, "-\t")
		default:
			fmt.Fprintf(tw, "%.0f\t", r.KernelPerConn)
		}
		fmt.Fprint(tw, "\n")
	}
	tw.Flush()
	if kernel {
		fmt.Fprintf(w, "kernel B/conn pair: slope of the host's socket memory (sockstat buffers + slab caches %s); both ends of each loopback connection are in it, one end is about half\n", strings.Join(kmem.Caches, " "))
		for _, row := range rows {
			if n := row.Result.KernelNote; n != "" {
				fmt.Fprintf(w, "%s kernel figures: %s\n", row.Name, n)
			}
		}
	}
	if line := compare(fitted); line != "" {
		fmt.Fprint(w, line)
	}
	for _, row := range rows {
		if row.Result.Error != "" {
			fmt.Fprintf(w, "%s failed: %s\n", row.Name, row.Result.Error)
		}
	}
}
