// Command memslope measures the memory cost of one idle WebSocket connection.
//
// For each implementation it builds and starts the benchmark server app
// (bench/servers/<impl>), then grows a fleet of idle client connections (in a
// child process: this binary re-executed with -client-mode) in steps. Every
// connection does the handshake and sends one subscribe to "room-<i%100>".
// At each step it waits until the server's /stats counts that many sessions,
// lets the server sit idle for -quiesce, reads /stats?gc=1 three times and
// keeps the smallest RSS. The least-squares
// slope of RSS (and of heap_inuse+stack_inuse) against the connection count
// is the cost of one connection; the intercept is the baseline.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

var (
	impls      = flag.String("impl", "livepoll,mizu", "comma-separated server apps (bench/servers/<impl>), run in turn")
	sizes      = flag.String("sizes", "2000,6000,10000,14000,18000", "comma-separated connection counts (at most ~18000: one process holds 20k fds)")
	jsonOut    = flag.String("json", "", "also write the results as JSON to this file")
	rate       = flag.Int("rate", 4000, "new connections per second at most")
	conc       = flag.Int("conc", 200, "handshakes in flight at once")
	settle     = flag.Duration("settle", 60*time.Second, "how long to wait for the server to count a step's sessions")
	quiesce    = flag.Duration("quiesce", 20*time.Second, "idle time before sampling a step, so worker pools grown by the connection burst can shrink")
	timeout    = flag.Duration("timeout", 10*time.Minute, "the whole run stops after this long")
	clientMode = flag.Bool("client-mode", false, "internal: run as the client fleet child process")
	serverURL  = flag.String("url", "", "internal: the server's WebSocket URL (client mode)")
)

func main() {
	flag.Parse()
	if _, err := proc.RaiseNOFILE(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	if *clientMode {
		if err := runClient(); err != nil {
			fmt.Printf("err %v\n", err)
			os.Exit(1)
		}
		return
	}
	time.AfterFunc(*timeout, func() {
		log.Printf("memslope: -timeout %v reached, exiting", *timeout)
		os.Exit(2) // children die with us (PDEATHSIG)
	})
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

// Step is one measured connection count.
type Step struct {
	Conns      int                 `json:"conns"`
	RSS        uint64              `json:"rss_bytes"`  // minimum of three
	HeapStack  uint64              `json:"heap_stack"` // heap_inuse+stack_inuse, minimum of three
	Goroutines int                 `json:"goroutines"` // of the last sample
	FDs        int                 `json:"fds"`        // of the last sample
	Samples    []srvstats.Snapshot `json:"samples"`
}

// Result is one implementation's run.
type Result struct {
	Impl              string  `json:"impl"`
	Idle              Step    `json:"idle"` // before any connection
	Steps             []Step  `json:"steps"`
	RSSPerConn        float64 `json:"rss_bytes_per_conn"`
	RSSBaseline       float64 `json:"rss_baseline_bytes"`
	HeapStackPerConn  float64 `json:"heap_stack_bytes_per_conn"`
	HeapStackBaseline float64 `json:"heap_stack_baseline_bytes"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	FDsPerConn        float64 `json:"fds_per_conn"`
	Error             string  `json:"error,omitempty"`
}

func run() error {
	var ns []int
	for f := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -sizes entry %q", f)
		}
		if len(ns) > 0 && n <= ns[len(ns)-1] {
			return errors.New("-sizes must increase")
		}
		ns = append(ns, n)
	}
	benchDir, err := harness.BenchDir()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "memslope-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var results []Result
	for impl := range strings.SplitSeq(*impls, ",") {
		impl = strings.TrimSpace(impl)
		if impl == "" {
			continue
		}
		log.Printf("%s: building", impl)
		r := Result{Impl: impl}
		if err := measure(benchDir, tmp, impl, ns, &r); err != nil {
			r.Error = err.Error()
			log.Printf("%s: FAILED: %v", impl, err)
		}
		results = append(results, r)
	}
	printTable(os.Stdout, results, ns)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func measure(benchDir, tmp, impl string, ns []int, r *Result) error {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	bin, err := harness.Build(ctx, benchDir, impl, tmp)
	if err != nil {
		return err
	}
	srv, err := harness.StartServer(bin, filepath.Join(tmp, impl+"-server.log"), *timeout)
	if err != nil {
		return err
	}
	defer srv.Stop(5 * time.Second)
	fail := func(err error) error {
		return fmt.Errorf("%w\nserver stderr (tail):\n%s", err, srv.LogTail(15))
	}
	if r.Idle, err = sample(srv.Addr, 0); err != nil {
		return fail(err)
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var stdin io.WriteCloser
	var stdout *bufio.Reader
	client, err := harness.Start(self, []string{"-client-mode", "-url", "ws://" + srv.Addr + "/ws",
		"-rate", strconv.Itoa(*rate), "-conc", strconv.Itoa(*conc), "-timeout", timeout.String()},
		filepath.Join(tmp, impl+"-client.log"), func(c *exec.Cmd) error {
			var err error
			if stdin, err = c.StdinPipe(); err != nil {
				return err
			}
			out, err := c.StdoutPipe()
			stdout = bufio.NewReader(out)
			return err
		})
	if err != nil {
		return err
	}
	defer func() {
		stdin.Close() // the client closes its connections and exits
		if err := client.Wait(10 * time.Second); err != nil {
			log.Printf("%s: client: %v", impl, err)
		}
	}()
	replies := harness.Lines(stdout)

	for _, n := range ns {
		start := time.Now()
		fmt.Fprintf(stdin, "%d\n", n)
		dialFor := time.Duration(n)*time.Second/time.Duration(max(*rate, 1)) + 2*time.Minute
		select {
		case line, ok := <-replies:
			if !ok {
				return fail(fmt.Errorf("client exited at step %d; client stderr:\n%s", n, client.LogTail(10)))
			}
			if !strings.HasPrefix(line, "ok") {
				return fail(fmt.Errorf("client at step %d: %s", n, line))
			}
		case <-time.After(dialFor):
			return fail(fmt.Errorf("client did not finish dialing %d connections within %v", n, dialFor))
		}
		if _, err := harness.WaitSessions(srv.Addr, int64(n), *settle); err != nil {
			return fail(err)
		}
		time.Sleep(*quiesce)
		st, err := sample(srv.Addr, n)
		if err != nil {
			return fail(err)
		}
		r.Steps = append(r.Steps, st)
		log.Printf("%s: %6d conns  rss %7.1f MiB  heap+stack %7.1f MiB  goroutines %6d  fds %6d  (%.1fs)",
			impl, n, mib(st.RSS), mib(st.HeapStack), st.Goroutines, st.FDs, time.Since(start).Seconds())
	}
	var xs, rss, hs, gs, fds []float64
	for _, st := range r.Steps {
		xs = append(xs, float64(st.Conns))
		rss = append(rss, float64(st.RSS))
		hs = append(hs, float64(st.HeapStack))
		gs = append(gs, float64(st.Goroutines))
		fds = append(fds, float64(st.FDs))
	}
	r.RSSPerConn, r.RSSBaseline = harness.Fit(xs, rss)
	r.HeapStackPerConn, r.HeapStackBaseline = harness.Fit(xs, hs)
	r.GoroutinesPerConn, _ = harness.Fit(xs, gs)
	r.FDsPerConn, _ = harness.Fit(xs, fds)
	return nil
}

// sample reads /stats?gc=1 three times and keeps the minima.
func sample(addr string, n int) (Step, error) {
	st := Step{Conns: n}
	for i := range 3 {
		s, err := harness.FetchStats(addr, true)
		if err != nil {
			return st, err
		}
		if s.Sessions != int64(n) {
			return st, fmt.Errorf("sessions changed to %d while sampling %d (closes %d)", s.Sessions, n, s.Closes)
		}
		hs := s.HeapInuse + s.StackInuse
		if i == 0 || s.RSSBytes < st.RSS {
			st.RSS = s.RSSBytes
		}
		if i == 0 || hs < st.HeapStack {
			st.HeapStack = hs
		}
		st.Goroutines, st.FDs = s.Goroutines, s.FDs
		st.Samples = append(st.Samples, s)
	}
	return st, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func printTable(w io.Writer, results []Result, ns []int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "impl\tidle\t")
	for _, n := range ns {
		fmt.Fprintf(tw, "RSS@%d\t", n)
	}
	fmt.Fprint(tw, "RSS B/conn\theap+stack B/conn\tgoroutines/conn\tfds/conn\t\n")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.1fM\t", r.Impl, mib(r.Idle.RSS))
		for i := range ns {
			if i < len(r.Steps) {
				fmt.Fprintf(tw, "%.1fM\t", mib(r.Steps[i].RSS))
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		if r.Error != "" || len(r.Steps) < 2 {
			fmt.Fprint(tw, "FAILED\t-\t-\t-\t\n")
			continue
		}
		fmt.Fprintf(tw, "%.0f\t%.0f\t%.2f\t%.2f\t\n", r.RSSPerConn, r.HeapStackPerConn, r.GoroutinesPerConn, r.FDsPerConn)
	}
	tw.Flush()
	var lp, mz *Result
	for i := range results {
		if results[i].Error == "" && len(results[i].Steps) >= 2 {
			switch results[i].Impl {
			case "livepoll":
				lp = &results[i]
			case "mizu":
				mz = &results[i]
			}
		}
	}
	if lp != nil && mz != nil && mz.RSSPerConn > 0 && mz.HeapStackPerConn > 0 {
		fmt.Fprintf(w, "livepoll/mizu: RSS per conn %.3f (mizu %.1fx more), heap+stack per conn %.3f\n",
			lp.RSSPerConn/mz.RSSPerConn, mz.RSSPerConn/lp.RSSPerConn, lp.HeapStackPerConn/mz.HeapStackPerConn)
	}
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(w, "%s failed: %s\n", r.Impl, r.Error)
		}
	}
}

// runClient is the fleet child: each stdin line N grows the fleet to N
// connections and is answered "ok N" (or "err ..."). At EOF on stdin it
// closes everything and exits. Connections are read by epoll loops only to
// answer pings and close frames; no goroutine waits on an idle connection.
func runClient() error {
	time.AfterFunc(*timeout, func() { os.Exit(2) })
	maxFD, _ := proc.RaiseNOFILE()
	var loops []*wsfleet.Loop
	var running sync.WaitGroup
	for range 2 {
		l, err := wsfleet.NewLoop(int(maxFD), nil)
		if err != nil {
			return err
		}
		loops = append(loops, l)
		running.Go(l.Run)
	}
	have := 0
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil {
			return err
		}
		spec := wsfleet.DialSpec{
			URL: *serverURL, From: have, To: n, Concurrency: *conc, Rate: *rate,
			First: func(i int) []byte {
				return fmt.Appendf(nil, `{"topic":"subscribe","data":{"topic":"room-%d"}}`, i%100)
			},
			Opened: func(d wsfleet.Dialed) error {
				return loops[d.Index%len(loops)].Add(&wsfleet.Conn{FD: d.FD, ID: d.Index}, d.Leftover)
			},
		}
		if err := wsfleet.DialMany(context.Background(), spec); err != nil {
			return err
		}
		have = n
		var closed int64
		for _, l := range loops {
			closed += l.Closed.Load()
		}
		fmt.Printf("ok %d closed %d\n", n, closed)
	}
	for _, l := range loops {
		l.Stop()
	}
	running.Wait()
	for _, l := range loops {
		l.CloseAll()
	}
	return nil
}
