//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

// TestMain also runs the child roles: loadgen re-executes itself, which under go test
// is this test binary.
func TestMain(m *testing.M) {
	if role := childRole(os.Args); role != "" {
		os.Exit(runChild(role))
	}
	leakcheck.Main(m)
}

// syncBuffer collects a run's stderr (progress lines, children's logs).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runLoadgen runs loadgen with args (plus a 2-minute -timeout) and returns its report.
func runLoadgen(t *testing.T, args ...string) *report {
	t.Helper()
	cfg, err := parseConfig(append([]string{"-timeout", "2m"}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	r, err := run(context.Background(), cfg, &stderr)
	if err != nil {
		t.Fatalf("loadgen %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if t.Failed() || testing.Verbose() {
		var out bytes.Buffer
		r.print(&out)
		t.Logf("loadgen %s:\n%s\nstderr:\n%s", strings.Join(args, " "), out.String(), stderr.String())
	}
	return r
}

// checkQuiet checks what every run of a quiet machine should show.
func checkQuiet(t *testing.T, r *report, conns int) {
	t.Helper()
	c := r.Connections
	if c.Requested != conns || c.Reached != int64(conns) || c.Ready != int64(conns) || c.Failed != 0 || c.OpenAtEnd != int64(conns) || c.ServerClosed != 0 {
		t.Errorf("connections %+v, want all %d reached, ready and open, none failed or closed", c, conns)
	}
	if c.RatePerSec <= 0 || c.Handshake.Count < uint64(conns) || c.Handshake.P50 <= 0 || c.Handshake.Max < c.Handshake.P50 {
		t.Errorf("connect figures %+v", c)
	}
	if len(r.Errors) != 0 {
		t.Errorf("errors: %+v", r.Errors)
	}
	if r.Loadgen.RSSBytes == 0 || len(r.Loadgen.Processes) != r.Processes {
		t.Errorf("loadgen figures %+v", r.Loadgen)
	}
	if r.Load == nil || r.Load.Seconds <= 0 {
		t.Fatalf("load %+v", r.Load)
	}
	if r.Load.Lost != 0 || r.Load.Dup != 0 || !r.Load.DrainComplete {
		t.Errorf("load %+v: want nothing lost or repeated", *r.Load)
	}
}

// checkServerFigures checks the per-connection server figures: every connection costs
// the server one descriptor.
func checkServerFigures(t *testing.T, r *report) {
	t.Helper()
	s := r.Server
	if s == nil {
		t.Fatalf("no server figures (%s)", r.ServerSkipped)
	}
	if s.PerConn.FDs < 0.95 || s.PerConn.FDs > 1.05 || s.After.RSSBytes == 0 || s.PerConn.RSSBytes == 0 {
		t.Errorf("server figures %+v", *s)
	}
	// The kernel figures: both ends of every connection are on this host, and open at
	// the After reading. (Other tests and programs open and close sockets meanwhile, so
	// the growth itself is not checked.)
	k := r.Kernel
	if k == nil {
		t.Fatalf("no kernel figures (%s)", r.KernelSkipped)
	}
	if k.Ends != 2 || k.After.TCPInuse < 2*k.Conns || k.PerEndBytes != k.PerConn.TotalBytes/2 {
		t.Errorf("kernel figures: ends %d, %d TCP sockets in use for %d connections, per end %.0f of %.0f B", k.Ends, k.After.TCPInuse, k.Conns, k.PerEndBytes, k.PerConn.TotalBytes)
	}
	// The drop counters of both phases are there (their values depend on the host's load).
	if r.Network == nil {
		t.Fatalf("no network figures (%s)", r.NetworkSkipped)
	}
}

func checkLoad(t *testing.T, r *report) {
	t.Helper()
	l := r.Load
	switch r.Scenario {
	case scenarioPublish:
		subsPerTopic := int64(r.Settings.Conns / r.Settings.Topics)
		if l.Published == 0 || l.Deliveries != l.Published*subsPerTopic || l.Expected != l.Deliveries {
			t.Errorf("published %d to %d subscribers per topic: deliveries %d, expected %d", l.Published, subsPerTopic, l.Deliveries, l.Expected)
		}
		if l.Latency == nil || l.Latency.Count != uint64(l.Deliveries) {
			t.Errorf("latency %+v for %d deliveries", l.Latency, l.Deliveries)
		}
		if r.Connections.Subscribe == nil || r.Connections.Subscribe.Count != uint64(r.Settings.Conns) {
			t.Errorf("subscribe latency %+v", r.Connections.Subscribe)
		}
	case scenarioEcho:
		if l.Sent == 0 || l.Deliveries != l.Sent || l.Expected != l.Sent || l.Latency == nil || l.Latency.Count != uint64(l.Sent) {
			t.Errorf("echo: sent %d, answers %d, expected %d, latency %+v", l.Sent, l.Deliveries, l.Expected, l.Latency)
		}
	case scenarioChurn:
		if l.ChurnOpened == 0 || l.ChurnClosed == 0 {
			t.Errorf("churn: closed %d, opened %d", l.ChurnClosed, l.ChurnOpened)
		}
	case scenarioSubscribe:
		if r.Connections.Subscribe == nil || r.Connections.Subscribe.Count != uint64(r.Settings.Conns) {
			t.Errorf("subscribe latency %+v", r.Connections.Subscribe)
		}
	}
}

func TestScenariosAgainstOwnServer(t *testing.T) {
	t.Parallel()
	for _, sc := range []string{scenarioIdle, scenarioSubscribe, scenarioPublish, scenarioEcho, scenarioChurn} {
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			r := runLoadgen(t, "-scenario", sc, "-conns", "200", "-topics", "20", "-duration", "1s",
				"-rate", "100", "-connect-rate", "2000", "-concurrency", "20", "-progress", "0")
			if !r.SelfStartedServer || r.Processes != 1 {
				t.Errorf("self-started %v, processes %d", r.SelfStartedServer, r.Processes)
			}
			checkQuiet(t, r, 200)
			checkServerFigures(t, r)
			checkLoad(t, r)
		})
	}
}

func TestScenariosAgainstInProcessServer(t *testing.T) {
	t.Parallel()
	_, url := inProcessServer(t)
	for _, sc := range []string{scenarioSubscribe, scenarioPublish, scenarioEcho, scenarioChurn} {
		t.Run(sc, func(t *testing.T) {
			r := runLoadgen(t, "-url", url, "-scenario", sc, "-conns", "150", "-topics", "10", "-duration", "1s",
				"-rate", "100", "-connect-rate", "2000", "-concurrency", "20", "-progress", "0")
			if r.SelfStartedServer || r.Target != url {
				t.Errorf("target %s, self-started %v", r.Target, r.SelfStartedServer)
			}
			checkQuiet(t, r, 150)
			// /stats on the same host was found. Its process figures are this test
			// process's, which holds both ends and other tests' connections.
			if s := r.Server; s == nil || s.After.Auths-s.Before.Auths < 150 {
				t.Errorf("server figures %+v (%s), want the 150 upgrades counted", s, r.ServerSkipped)
			}
			checkLoad(t, r)
		})
	}
}

func TestSplitOverWorkerProcesses(t *testing.T) {
	t.Parallel()
	r := runLoadgen(t, "-scenario", "publish", "-conns", "300", "-per-proc", "100", "-topics", "30",
		"-duration", "1s", "-rate", "60", "-connect-rate", "1500", "-concurrency", "20", "-progress", "200ms")
	if r.Processes != 3 || len(r.Loadgen.Processes) != 3 {
		t.Fatalf("%d processes (%d reported), want 3", r.Processes, len(r.Loadgen.Processes))
	}
	pids := map[int]bool{}
	for i, p := range r.Loadgen.Processes {
		if p.Conns != 100 || p.RSSEnd == 0 || pids[p.PID] {
			t.Errorf("process %d: %+v", i, p)
		}
		pids[p.PID] = true
		if want := map[bool]string{true: "coordinator", false: "worker"}[i == 0]; p.Role != want {
			t.Errorf("process %d is %s, want %s", i, p.Role, want)
		}
	}
	if pids[os.Getpid()] != true {
		t.Errorf("the coordinator's pid %d is not among %v", os.Getpid(), pids)
	}
	if len(r.Limits.Notes) == 0 || !strings.Contains(r.Limits.Notes[0], "-per-proc 100") {
		t.Errorf("limits notes %q do not say why the fleet was split", r.Limits.Notes)
	}
	checkQuiet(t, r, 300)
	checkServerFigures(t, r)
	checkLoad(t, r)
}

func TestJSONReport(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "report.json")
	r := runLoadgen(t, "-scenario", "publish", "-conns", "100", "-topics", "10", "-duration", "1s",
		"-rate", "50", "-progress", "0", "-json", path)
	if err := r.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	get := func(path string) any {
		var v any = m
		for _, k := range strings.Split(path, ".") {
			obj, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = obj[k]
		}
		return v
	}
	positive := []string{
		"connections.reached", "connections.connect_rate_per_sec", "connections.handshake.p50_ms",
		"load.deliveries", "load.deliveries_per_sec", "load.expected", "load.published",
		"load.latency.p50_ms", "load.latency.p90_ms", "load.latency.p99_ms", "load.latency.p999_ms", "load.latency.max_ms",
		"server.per_conn.rss_bytes", "server.per_conn.fds", "server.after.rss_bytes", "server.after.heap_inuse",
		"loadgen.rss_bytes", "loadgen.pss_bytes", "limits.nofile_hard", "processes",
	}
	for _, k := range positive {
		if f, ok := get(k).(float64); !ok || f <= 0 {
			t.Errorf("%s = %v, want a positive number", k, get(k))
		}
	}
	for _, k := range []string{"load.lost", "load.dup", "connections.failed", "connections.server_closed"} {
		if f, ok := get(k).(float64); !ok || f != 0 {
			t.Errorf("%s = %v, want 0 in a quiet run", k, get(k))
		}
	}
	if e, ok := get("errors").(map[string]any); !ok || len(e) != 0 {
		t.Errorf("errors = %v, want {}", get("errors"))
	}
	if get("server.per_conn.goroutines") == nil || get("server.per_conn.heap_bytes") == nil {
		t.Error("server.per_conn lacks goroutines or heap_bytes")
	}
}

func TestOwnServerTooSmallSaysSoUpFront(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig([]string{"-conns", "1000000", "-scenario", "idle", "-progress", "0", "-per-proc", "1000000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = run(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ulimit -Hn") || !strings.Contains(err.Error(), "nr_open") {
		t.Fatalf("err %v, want the limit and how to lift it", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v: it should fail before dialing", took)
	}
}

func TestUnreachableTargetCountsErrors(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(nil)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	hs.Close() // nothing listens there now
	r := runLoadgen(t, "-url", url, "-scenario", "idle", "-conns", "20", "-duration", "100ms", "-progress", "0")
	if r.Connections.Reached != 0 || r.Connections.Failed != 20 {
		t.Errorf("connections %+v, want 20 failed", r.Connections)
	}
	e, ok := r.Errors["connect_refused"]
	if !ok || e.Count != 20 || e.Hint == "" || e.Example == "" {
		t.Errorf("errors %+v, want 20 connect_refused with an example and a hint", r.Errors)
	}
	if r.Server != nil || r.ServerSkipped == "" {
		t.Errorf("server %+v, skipped %q: want the figures skipped with a reason", r.Server, r.ServerSkipped)
	}
}
