//go:build linux

package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/livepoll/livepoll/internal/hist"
	"github.com/livepoll/livepoll/internal/kmem"
	"github.com/livepoll/livepoll/internal/srvstats"
)

// report is what a run found; -json writes it as is.
type report struct {
	Scenario          string                `json:"scenario"`
	Target            string                `json:"target"`
	SelfStartedServer bool                  `json:"self_started_server"`
	Settings          settings              `json:"settings"`
	Processes         int                   `json:"processes"`
	Sources           []string              `json:"sources"` // "" is "chosen by the kernel"
	Connections       connReport            `json:"connections"`
	Load              *loadReport           `json:"load,omitempty"`
	Errors            map[string]errorCount `json:"errors"`
	Server            *serverReport         `json:"server,omitempty"`
	ServerSkipped     string                `json:"server_skipped,omitempty"` // why there are no server figures
	Kernel            *kernelReport         `json:"kernel,omitempty"`         // the host kernel's socket memory
	Abuse             *abuseReport          `json:"abuse,omitempty"`          // abuse: the hostile clients' fate and the server's memory
	HeapProfile       *heapReport           `json:"heap_profile,omitempty"`   // -heap-profile: the server's heap at the end of the load phase
	HeapProfileError  string                `json:"heap_profile_error,omitempty"`
	KernelSkipped     string                `json:"kernel_skipped,omitempty"` // why there are no kernel figures
	Network           *networkReport        `json:"network,omitempty"`        // packets the host's kernel dropped or resent, per phase
	NetworkSkipped    string                `json:"network_skipped,omitempty"`
	Loadgen           loadgenReport         `json:"loadgen"`
	Limits            limitsReport          `json:"limits"`
	Seconds           float64               `json:"seconds"` // the whole run
}

// networkReport is what the host's kernel dropped and resent while the fleet connected and
// during the load phase (every process on the host counts, so run nothing else beside).
type networkReport struct {
	Connect kmem.Net `json:"connect"`
	Load    kmem.Net `json:"load"`
}

type settings struct {
	Conns       int     `json:"conns"`
	Topics      int     `json:"topics"`
	Rate        float64 `json:"rate"`               // 0 for a closed-loop echo (-inflight)
	Inflight    int     `json:"inflight,omitempty"` // echo: requests in flight per connection (closed loop)
	DurationSec float64 `json:"duration_seconds"`
	ConnectRate int     `json:"connect_rate"`
	Concurrency int     `json:"concurrency"`
	Size        int     `json:"size"`
	Publishers  int     `json:"publishers,omitempty"`
	PerProc     int     `json:"per_proc"`
}

type connReport struct {
	Requested    int   `json:"requested"`
	Reached      int64 `json:"reached"` // handshakes that succeeded in the connect phase
	Ready        int64 `json:"ready"`   // subscribed (barrier answered) or, without a subscribe, connected
	Failed       int64 `json:"failed"`
	OpenAtEnd    int64 `json:"open_at_end"`
	ServerClosed int64 `json:"server_closed"` // closed by the server or broken, any time (not this side's churn closes)
	// ServerClosedBy splits ServerClosed by reason (wsfleet.Reason: close_<code>, reset,
	// eof, timeout, write_error, ...; publisher connections as publisher_<reason>).
	ServerClosedBy map[string]int64 `json:"server_closed_by"`
	Seconds        float64          `json:"connect_seconds"`
	RatePerSec     float64          `json:"connect_rate_per_sec"`
	Handshake      percentiles      `json:"handshake"`           // connect + upgrade, per connection
	Subscribe      *percentiles     `json:"subscribe,omitempty"` // subscribe sent → echo barrier back
}

type loadReport struct {
	Seconds          float64      `json:"seconds"`
	Published        int64        `json:"published,omitempty"`    // publish: messages published
	Sent             int64        `json:"sent,omitempty"`         // echo: requests sent
	Deliveries       int64        `json:"deliveries"`             // publish: messages received by subscribers; echo: answers
	DeliveriesPerSec float64      `json:"deliveries_per_sec"`     // deliveries ÷ the load phase
	Expected         int64        `json:"expected"`               // deliveries owed to every connection, those the server closed included
	Lost             int64        `json:"lost"`                   // owed and not received by the end of the drain: gaps, the missing tail, and everything owed to connections the server closed
	Unanswered       int64        `json:"unanswered"`             // echo: requests sent (on any connection) without an answer by the end of the drain; included in lost
	Dup              int64        `json:"dup"`                    // repeated or out-of-order messages
	DrainComplete    bool         `json:"drain_complete"`         // nothing was missing when the drain ended
	Latency          *percentiles `json:"latency,omitempty"`      // publish→receive, or echo round trip
	ChurnClosed      int64        `json:"churn_closed,omitempty"` // churn: connections closed with a closing handshake
	ChurnOpened      int64        `json:"churn_opened,omitempty"` // churn: replacements opened

	// CPU over the load phase, from a reading right before it starts to one right as it
	// ends (before the drain). A figure that could not be had is left out, never 0.
	CPUWindowSeconds        float64  `json:"cpu_window_seconds"`                    // from the first reading to the second
	CPUDeliveries           *int64   `json:"cpu_deliveries,omitempty"`              // deliveries (echo: answers) received in the window, all processes
	ServerCPUSeconds        *float64 `json:"server_cpu_seconds,omitempty"`          // the server's user + system CPU in the window (its /stats)
	ServerCPUUsPerDelivery  *float64 `json:"server_cpu_us_per_delivery,omitempty"`  // server_cpu_seconds in µs ÷ cpu_deliveries
	ServerCPUSkipped        string   `json:"server_cpu_skipped,omitempty"`          // why there are no server CPU figures
	LoadgenCPUSeconds       *float64 `json:"loadgen_cpu_seconds,omitempty"`         // loadgen's processes' CPU in the window (the server excluded)
	LoadgenCPUUsPerDelivery *float64 `json:"loadgen_cpu_us_per_delivery,omitempty"` // loadgen_cpu_seconds in µs ÷ cpu_deliveries
}

// percentiles of a latency histogram, in milliseconds.
type percentiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func percentilesOf(h *hist.Hist) percentiles {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return percentiles{Count: h.Count(), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
}

// serverReport is the server's /stats?gc=1 before the fleet and once it is up.
type serverReport struct {
	StatsURL string            `json:"stats_url"`
	Before   srvstats.Snapshot `json:"before"`
	After    srvstats.Snapshot `json:"after"`
	Conns    int64             `json:"conns"` // loadgen's connections open at the After reading (publishers included)
	PerConn  perConn           `json:"per_conn"`
}

// perConn is (after − before) ÷ conns.
type perConn struct {
	RSSBytes   float64 `json:"rss_bytes"`
	HeapBytes  float64 `json:"heap_bytes"` // heap_inuse + stack_inuse
	Goroutines float64 `json:"goroutines"`
	FDs        float64 `json:"fds"`
}

type loadgenReport struct {
	RSSBytes             uint64       `json:"rss_bytes"`               // all loadgen processes, at the end of the load phase
	RSSAfterConnectBytes uint64       `json:"rss_after_connect_bytes"` // all loadgen processes, once the fleet was up
	PSSBytes             uint64       `json:"pss_bytes"`               // all loadgen processes, end of the load phase; shared pages (the binary) counted once
	CPUSeconds           float64      `json:"cpu_seconds"`
	Processes            []procReport `json:"processes"`
}

type procReport struct {
	Role            string  `json:"role"` // coordinator or worker
	PID             int     `json:"pid"`
	Conns           int     `json:"conns"`
	RSSAfterConnect uint64  `json:"rss_after_connect_bytes"`
	RSSEnd          uint64  `json:"rss_end_bytes"`
	PSSEnd          uint64  `json:"pss_end_bytes"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	NOFILESoft      uint64  `json:"nofile_soft"`
	NOFILEHard      uint64  `json:"nofile_hard"`
}

type limitsReport struct {
	NOFILESoft   uint64   `json:"nofile_soft"`
	NOFILEHard   uint64   `json:"nofile_hard"`
	NrOpen       uint64   `json:"nr_open"`
	PortRange    [2]int   `json:"ip_local_port_range"`
	PerProcess   int      `json:"per_process"`             // connections one loadgen process holds at most
	ServerNOFILE uint64   `json:"server_nofile,omitempty"` // loadgen's own server's soft limit
	Notes        []string `json:"notes"`                   // limits that shaped the run, and how to lift them
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func fmtMs(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 1:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.0fµs", ms*1000)
}

func (p percentiles) String() string {
	if p.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d samples)",
		fmtMs(p.P50), fmtMs(p.P90), fmtMs(p.P99), fmtMs(p.P999), fmtMs(p.Max), p.Count)
}

// print writes the report as a two-column table.
func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, args...)) }
	server := "self-started livepoll server"
	if !r.SelfStartedServer {
		server = "external server"
	}
	fmt.Fprintf(tw, "loadgen report: %s, %d connections to %s (%s)\n", r.Scenario, r.Settings.Conns, r.Target, server)
	row("processes", "%d (at most %d connections each; RLIMIT_NOFILE soft %d, hard %d)", r.Processes, r.Limits.PerProcess, r.Limits.NOFILESoft, r.Limits.NOFILEHard)
	row("source addresses", "%s", describeSources(r.Sources))
	c := r.Connections
	row("connections reached", "%d of %d (failed %d), %d open at the end, %d closed by the server%s", c.Reached, c.Requested, c.Failed, c.OpenAtEnd, c.ServerClosed, describeReasons(c.ServerClosedBy))
	row("connect rate", "%.0f/s (%.2f s; -connect-rate %d)", c.RatePerSec, c.Seconds, r.Settings.ConnectRate)
	row("handshake", "%s", c.Handshake)
	if c.Subscribe != nil {
		row("subscribed", "%d", c.Ready)
		row("subscribe → confirmed", "%s", *c.Subscribe)
	}
	if l := r.Load; l != nil {
		switch r.Scenario {
		case scenarioPublish:
			row("published", "%d messages to %d topics in %.1f s (%.0f/s, %d subscribers per topic)", l.Published, r.Settings.Topics, l.Seconds, float64(l.Published)/max(l.Seconds, 1e-9), r.Settings.Conns/r.Settings.Topics)
		case scenarioEcho, scenarioAbuse:
			loop := ""
			if n := r.Settings.Inflight; n > 0 {
				loop = fmt.Sprintf(", closed loop: %d in flight per connection", n)
			}
			row("echo requests", "%d in %.1f s (%.0f/s)%s", l.Sent, l.Seconds, float64(l.Sent)/max(l.Seconds, 1e-9), loop)
		case scenarioChurn:
			row("churn", "%d closed with a closing handshake, %d reopened in %.1f s", l.ChurnClosed, l.ChurnOpened, l.Seconds)
		default:
			row("held", "%.1f s", l.Seconds)
		}
		if r.Scenario == scenarioPublish || r.echoes() {
			drain := ""
			if !l.DrainComplete {
				drain = " (messages still missing when -drain ran out)"
			}
			unanswered := ""
			if r.echoes() {
				unanswered = fmt.Sprintf(" (unanswered %d)", l.Unanswered)
			}
			row("deliveries", "%d (%.0f/s), expected %d, lost %d%s, duplicated %d%s", l.Deliveries, l.DeliveriesPerSec, l.Expected, l.Lost, unanswered, l.Dup, drain)
		}
		if l.Latency != nil {
			what := "publish → receive"
			if r.echoes() {
				what = "echo round trip"
			}
			row(what, "%s", *l.Latency)
		}
		row("CPU, load phase", "%s", l.describeCPU())
	}
	row("losses", "%s", r.lossSummary())
	if a := r.Abuse; a != nil {
		r.printAbuse(row)
	}
	if len(r.Errors) == 0 {
		row("errors", "none")
	}
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for i, k := range kinds {
		e := r.Errors[k]
		key := ""
		if i == 0 {
			key = "errors"
		}
		row(key, "%s: %d (e.g. %s)", k, e.Count, e.Example)
	}
	if s := r.Server; s != nil {
		row("server per connection", "RSS %.0f B, heap+stacks %.0f B, goroutines %.2f, fds %.2f (over %d connections)", s.PerConn.RSSBytes, s.PerConn.HeapBytes, s.PerConn.Goroutines, s.PerConn.FDs, s.Conns)
		row("server before → after", "RSS %s → %s, goroutines %d → %d, fds %d → %d", mib(s.Before.RSSBytes), mib(s.After.RSSBytes), s.Before.Goroutines, s.After.Goroutines, s.Before.FDs, s.After.FDs)
	} else if r.ServerSkipped != "" {
		row("server figures", "skipped: %s", r.ServerSkipped)
	}
	if k := r.Kernel; k != nil {
		row("kernel per connection", "%s", k.describe())
	} else if r.KernelSkipped != "" {
		row("kernel figures", "skipped: %s", r.KernelSkipped)
	}
	if n := r.Network; n != nil {
		row("network, connecting", "%s", n.Connect)
		row("network, load phase", "%s", n.Load)
		if n.Load.Timeouts > 0 || n.Load.SoftnetDropped > 0 {
			row("", "(a dropped packet waits at least 200 ms for a retransmission timeout: the latency tail includes the kernel's drops)")
		}
	} else if r.NetworkSkipped != "" {
		row("network figures", "skipped: %s", r.NetworkSkipped)
	}
	if h := r.HeapProfile; h != nil {
		row("server heap profile", "%s in use (%.0f B per connection over %d), written to %s; top allocation sites (inuse_space):", mib(uint64(h.InuseBytes)), h.PerConnBytes, h.Conns, h.File)
		for _, s := range h.Top {
			row("", "%8.0f B/conn  %5.1f%%  %s (%s)", s.PerConnBytes, 100*s.Share, s.Function, s.Location)
		}
	} else if r.HeapProfileError != "" {
		row("server heap profile", "FAILED: %s", r.HeapProfileError)
	}
	lg := r.Loadgen
	pss := ""
	if len(lg.Processes) > 1 {
		pss = fmt.Sprintf(" (PSS %s: the binary's pages counted once)", mib(lg.PSSBytes))
	}
	row("loadgen RSS", "%s at the end of the load phase%s, %s once connected; %d process(es), CPU %.1f s", mib(lg.RSSBytes), pss, mib(lg.RSSAfterConnectBytes), len(lg.Processes), lg.CPUSeconds)
	for i, n := range r.Limits.Notes {
		key := ""
		if i == 0 {
			key = "limits"
		}
		row(key, "%s", n)
	}
	row("run time", "%.1f s", r.Seconds)
	tw.Flush()
	for _, k := range kinds {
		if h := r.Errors[k].Hint; h != "" {
			fmt.Fprintf(w, "  hint (%s): %s\n", k, h)
		}
	}
}

func describeSources(srcs []string) string {
	switch {
	case len(srcs) == 0 || (len(srcs) == 1 && srcs[0] == ""):
		return "chosen by the kernel"
	case len(srcs) == 1:
		return srcs[0]
	}
	return fmt.Sprintf("%d (%s … %s)", len(srcs), srcs[0], srcs[len(srcs)-1])
}

// writeJSON writes the report to path.
func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// echoes reports whether the fleet sent echo requests (echo, and abuse's healthy clients).
func (r *report) echoes() bool { return r.Scenario == scenarioEcho || r.Scenario == scenarioAbuse }

// nothingLost reports whether the run lost nothing: no message owed went missing and
// the server closed no connection (this side's churn closes are not the server's).
func (r *report) nothingLost() bool {
	lost := int64(0)
	if r.Load != nil {
		lost = r.Load.Lost
	}
	return lost == 0 && r.Connections.ServerClosed == 0
}

// lossSummary is the report's one-line verdict on losses.
func (r *report) lossSummary() string {
	if r.nothingLost() {
		return "nothing lost (0 messages lost, 0 connections closed by the server)"
	}
	var lost, unanswered int64
	if r.Load != nil {
		lost, unanswered = r.Load.Lost, r.Load.Unanswered
	}
	s := fmt.Sprintf("LOST %d messages", lost)
	if r.echoes() {
		s += fmt.Sprintf(" (%d echo requests unanswered)", unanswered)
	}
	return s + fmt.Sprintf("; %d connections closed by the server%s", r.Connections.ServerClosed, describeReasons(r.Connections.ServerClosedBy))
}

// describeReasons lists close reasons by count, most first: " (reset 3, eof 2)".
func describeReasons(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
