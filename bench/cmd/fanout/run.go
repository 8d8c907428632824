package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/bench/internal/tlscert"
	"github.com/livepoll/livepoll/internal/proc"
)

// Result is one implementation's (or the floor's) run.
type Result struct {
	Impl        string        `json:"impl"`
	Client      *ClientResult `json:"client,omitempty"`
	Floor       *FloorResult  `json:"floor,omitempty"`
	ServerCPUNs int64         `json:"server_cpu_ns"` // in the measured window (floor: the writer's)
	// PeerCPUNs is the client's (floor: the sink's) CPU in the window.
	PeerCPUNs int64 `json:"peer_cpu_ns"`
	// SoftirqCPUNs is the machine's interrupt and softirq time in the
	// window: the loopback receive path, charged to no process.
	SoftirqCPUNs int64 `json:"softirq_cpu_ns"`
	// OtherCPUNs is the rest of the machine's busy time: other programs
	// running at the same time, which the figures above do not include
	// but which slow the run down. It is reported as measured and can be
	// slightly negative: /proc/stat (the machine) and /proc/<pid>/stat (the
	// two processes) are read at slightly different instants and both count
	// in 10 ms ticks, so the difference of their sums is off by a few ticks
	// either way.
	OtherCPUNs int64   `json:"other_cpu_ns"`
	PerSec     float64 `json:"deliveries_per_sec"`
	CPUPerOp   float64 `json:"cpu_us_per_delivery"`
	Error      string  `json:"error,omitempty"`
}

func run() error {
	if *useTLS && *compress {
		return errors.New("-tls with -compress is not supported")
	}
	benchDir, err := harness.BenchDir()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fanout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var cert *tlscert.Files
	if *useTLS {
		_, files, err := tlscert.Make(tmp, "fanout")
		if err != nil {
			return err
		}
		cert = &files
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	mode := fmt.Sprintf("closed loop, window %d", *window)
	if *rate > 0 {
		mode = fmt.Sprintf("open loop, %g msg/s", *rate)
	}
	if *useTLS {
		mode += ", wss:// (the floor: raw TCP)"
	}
	log.Printf("fanout: %d subscribers, %s, %v measured after %v warm-up", *subs, mode, *duration, *warmup)

	var results []Result
	for impl := range strings.SplitSeq(*impls, ",") {
		impl = strings.TrimSpace(impl)
		if impl == "" {
			continue
		}
		r := Result{Impl: impl}
		if err := runImpl(benchDir, tmp, self, impl, cert, &r); err != nil {
			r.Error = err.Error()
			log.Printf("%s: FAILED: %v", impl, err)
		}
		results = append(results, r)
	}
	if *floor {
		r := Result{Impl: "floor"}
		if err := runFloor(tmp, self, &r); err != nil {
			r.Error = err.Error()
			log.Printf("floor: FAILED: %v", err)
		}
		results = append(results, r)
	}
	printTable(os.Stdout, results, mode)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

func childArgs(role string, extra ...string) []string {
	args := []string{"-role", role, "-subs", strconv.Itoa(*subs), "-window", strconv.Itoa(*window),
		"-rate", strconv.FormatFloat(*rate, 'g', -1, 64), "-duration", duration.String(),
		"-warmup", warmup.String(), "-frame", strconv.Itoa(*frame), "-dial-rate", strconv.Itoa(*dialRate),
		"-dial-conc", strconv.Itoa(*dialConc), "-timeout", timeout.String(), "-compress=" + strconv.FormatBool(*compress),
		"-tls=" + strconv.FormatBool(*useTLS)}
	return append(args, extra...)
}

// startWithStdout starts a child and returns its stdout lines.
func startWithStdout(bin string, args []string, logPath string) (*harness.Child, <-chan string, error) {
	var out io.ReadCloser
	c, err := harness.Start(bin, args, logPath, func(cmd *exec.Cmd) error {
		var err error
		out, err = cmd.StdoutPipe()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return c, harness.Lines(bufio.NewReader(out)), nil
}

// expect waits for a line starting with want, calling onLine for it.
func expect(lines <-chan string, want string, timeout time.Duration, c *harness.Child) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return "", fmt.Errorf("%s exited before %s; its stderr:\n%s", filepath.Base(c.LogPath), want, c.LogTail(10))
			}
			if strings.HasPrefix(line, want) {
				return strings.TrimSpace(strings.TrimPrefix(line, want)), nil
			}
			log.Printf("  %s: %s", filepath.Base(c.LogPath), line)
		case <-deadline:
			return "", fmt.Errorf("no %s from %s within %v; its stderr:\n%s", want, filepath.Base(c.LogPath), timeout, c.LogTail(10))
		}
	}
}

// cpuMark is a reading of the CPU counters at one end of the window.
type cpuMark struct {
	proc, peer int64
	machine    proc.Machine
}

// mark reads the counters of the measured process and its peer.
func mark(pid, peer int) (cpuMark, error) {
	var m cpuMark
	var err error
	if m.proc, err = proc.CPU(pid); err != nil {
		return m, err
	}
	if m.peer, err = proc.CPU(peer); err != nil {
		return m, err
	}
	m.machine, err = proc.ReadMachine()
	return m, err
}

func (r *Result) setWindow(a, b cpuMark) {
	r.ServerCPUNs = b.proc - a.proc
	r.PeerCPUNs = b.peer - a.peer
	r.SoftirqCPUNs = b.machine.Softirq - a.machine.Softirq
	r.OtherCPUNs = b.machine.Busy - a.machine.Busy - r.ServerCPUNs - r.PeerCPUNs - r.SoftirqCPUNs
}

func runImpl(benchDir, tmp, self, impl string, cert *tlscert.Files, r *Result) error {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	log.Printf("%s: building", impl)
	bin, err := harness.Build(ctx, benchDir, impl, tmp)
	if err != nil {
		return err
	}
	srv, err := harness.StartApp(bin, filepath.Join(tmp, impl+"-server.log"), *timeout, cert, *compress)
	if err != nil {
		return err
	}
	defer srv.Stop(5 * time.Second)
	fail := func(err error) error {
		s, serr := harness.FetchStats(srv.StatsAddr, false)
		state := fmt.Sprintf("server /stats: sessions %d auths %d closes %d goroutines %d", s.Sessions, s.Auths, s.Closes, s.Goroutines)
		if serr != nil {
			state = fmt.Sprintf("server /stats: %v (exited: %v)", serr, srv.Exited())
		}
		return fmt.Errorf("%w\n%s\nserver stderr (tail):\n%s", err, state, srv.LogTail(15))
	}
	args := childArgs("client", "-addr", srv.Addr, "-stats-addr", srv.StatsAddr)
	if cert != nil {
		args = append(args, "-ca", cert.Cert)
	}
	client, lines, err := startWithStdout(self, args, filepath.Join(tmp, impl+"-client.log"))
	if err != nil {
		return err
	}
	defer client.Stop(5 * time.Second)

	dialFor := time.Duration(*subs)*time.Second/time.Duration(max(*dialRate, 1)) + 90*time.Second
	if _, err := expect(lines, "READY", dialFor, client); err != nil {
		return fail(err)
	}
	log.Printf("%s: %d subscribers connected", impl, *subs)
	if _, err := expect(lines, "START", *warmup+30*time.Second, client); err != nil {
		return fail(err)
	}
	cpu0, err := mark(srv.Cmd.Process.Pid, client.Cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	if _, err := expect(lines, "END", *duration+30*time.Second, client); err != nil {
		return fail(err)
	}
	cpu1, err := mark(srv.Cmd.Process.Pid, client.Cmd.Process.Pid)
	if err != nil {
		return fail(err)
	}
	body, err := expect(lines, "RESULT", 30*time.Second, client)
	if err != nil {
		return fail(err)
	}
	var cr ClientResult
	if err := json.Unmarshal([]byte(body), &cr); err != nil {
		return err
	}
	r.Client = &cr
	r.setWindow(cpu0, cpu1)
	if cr.Seconds > 0 {
		r.PerSec = float64(cr.Deliveries) / cr.Seconds
	}
	if cr.Deliveries > 0 {
		r.CPUPerOp = float64(r.ServerCPUNs) / 1e3 / float64(cr.Deliveries)
	}
	log.Printf("%s: %.0f deliveries/s, server %.3f µs/delivery, lost %d, closed %d", impl, r.PerSec, r.CPUPerOp, cr.Lost, cr.Closed)
	return nil
}

func runFloor(tmp, self string, r *Result) error {
	data, err := harness.FreePort()
	if err != nil {
		return err
	}
	ctl, err := harness.FreePort()
	if err != nil {
		return err
	}
	sink, sinkLines, err := startWithStdout(self, childArgs("sink", "-addr", data, "-ctl", ctl), filepath.Join(tmp, "floor-sink.log"))
	if err != nil {
		return err
	}
	defer sink.Stop(5 * time.Second)
	if _, err := expect(sinkLines, "LISTENING", 10*time.Second, sink); err != nil {
		return err
	}
	writer, lines, err := startWithStdout(self, childArgs("writer", "-addr", data, "-ctl", ctl), filepath.Join(tmp, "floor-writer.log"))
	if err != nil {
		return err
	}
	defer writer.Stop(5 * time.Second)
	dialFor := time.Duration(*subs)*time.Second/time.Duration(max(*dialRate, 1)) + 90*time.Second
	if _, err := expect(lines, "START", dialFor+*warmup, writer); err != nil {
		return err
	}
	m0, err := mark(writer.Cmd.Process.Pid, sink.Cmd.Process.Pid)
	if err != nil {
		return err
	}
	if _, err := expect(lines, "END", *duration+30*time.Second, writer); err != nil {
		return err
	}
	m1, err := mark(writer.Cmd.Process.Pid, sink.Cmd.Process.Pid)
	if err != nil {
		return err
	}
	r.setWindow(m0, m1)
	body, err := expect(lines, "RESULT", 30*time.Second, writer)
	if err != nil {
		return err
	}
	var fr FloorResult
	if err := json.Unmarshal([]byte(body), &fr); err != nil {
		return err
	}
	r.Floor = &fr
	r.ServerCPUNs = fr.CPUNs // its own getrusage: finer than /proc ticks
	if fr.Seconds > 0 {
		r.PerSec = float64(fr.Writes) / fr.Seconds
	}
	if fr.Writes > 0 {
		r.CPUPerOp = float64(fr.CPUNs) / 1e3 / float64(fr.Writes)
	}
	log.Printf("floor: %.0f writes/s, %.3f µs/write", r.PerSec, r.CPUPerOp)
	return nil
}

func printTable(w io.Writer, results []Result, mode string) {
	var mizu, fl float64
	for _, r := range results {
		if r.Error == "" && r.CPUPerOp > 0 {
			switch r.Impl {
			case "mizu":
				mizu = r.CPUPerOp
			case "floor":
				fl = r.CPUPerOp
			}
		}
	}
	ratio := func(v, base float64) string {
		if base == 0 || v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v/base)
	}
	fmt.Fprintf(w, "fanout: %d subscribers, %s, %v measured\n", *subs, mode, *duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "impl\tdeliveries/s\tCPU µs/delivery\t/mizu\t/floor\tsrv cores\tsoftirq µs/del\tclient(sink) µs/del\tother cores\tframe B\twire B/del\tcompressed\tlost\tdup\tclosed\tp50\tp90\tp99\tp99.9\tmax\t\n")
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n", r.Impl)
			continue
		}
		cores := 0.0
		if secs := r.seconds(); secs > 0 {
			cores = float64(r.ServerCPUNs) / 1e9 / secs
		}
		secs := max(r.seconds(), 1e-9)
		fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%s\t%s\t%.2f\t%.3f\t%.3f\t%.2f\t", r.Impl, r.PerSec, r.CPUPerOp, ratio(r.CPUPerOp, mizu), ratio(r.CPUPerOp, fl), cores,
			perOp(r.SoftirqCPUNs, r.ops()), perOp(r.PeerCPUNs, r.ops()), float64(r.OtherCPUNs)/1e9/secs)
		if c := r.Client; c != nil {
			l := c.Latency
			fmt.Fprintf(tw, "%d\t%.0f\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n",
				c.FrameBytes, c.WireBytes, c.Compressed, c.Lost, c.Dup, c.Closed,
				us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
		} else {
			fmt.Fprintf(tw, "%d\t%d\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", *frame, *frame)
		}
	}
	tw.Flush()
	for _, r := range results {
		if r.Client != nil && (r.Client.CloseErr != "" || r.Client.Incomplete > 0) {
			fmt.Fprintf(w, "%s: %d messages given up on; close reason: %s\n", r.Impl, r.Client.Incomplete, r.Client.CloseErr)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "%s failed: %s\n", r.Impl, r.Error)
		}
	}
}

// ops is the number of deliveries (floor: writes) in the window.
func (r Result) ops() int64 {
	if r.Client != nil {
		return r.Client.Deliveries
	}
	if r.Floor != nil {
		return r.Floor.Writes
	}
	return 0
}

func perOp(ns, ops int64) float64 { return float64(ns) / 1e3 / float64(max(ops, 1)) }

// seconds is the measured window.
func (r Result) seconds() float64 {
	if r.Client != nil {
		return r.Client.Seconds
	}
	if r.Floor != nil {
		return r.Floor.Seconds
	}
	return 0
}

func us(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fs", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fms", v/1e3)
	}
	return fmt.Sprintf("%.0fµs", v)
}
