//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/srvstats"
)

func TestInflightFlagChecks(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"-scenario", "publish", "-inflight", "2"}, "-inflight is for -scenario echo only"},
		{[]string{"-inflight", "1"}, "-inflight is for -scenario echo only"}, // publish by default
		{[]string{"-scenario", "abuse", "-inflight", "1"}, "-inflight is for -scenario echo only"},
		{[]string{"-scenario", "churn", "-inflight", "1"}, "-inflight is for -scenario echo only"},
		{[]string{"-scenario", "echo", "-inflight", "-1"}, "-inflight must not be negative"},
		{[]string{"-scenario", "echo", "-inflight", "x"}, "invalid value"},
	} {
		_, err := parseConfig(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.args, err, tc.want)
		}
	}
	cfg, err := parseConfig([]string{"-scenario", "echo", "-inflight", "3", "-rate", "500"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Inflight != 3 || cfg.Rate != 0 {
		t.Errorf("inflight %d, rate %v: want 3 and the rate ignored (0)", cfg.Inflight, cfg.Rate)
	}
	cfg, err = parseConfig([]string{"-scenario", "echo"}, io.Discard)
	if err != nil || cfg.Inflight != 0 || cfg.Rate != 2000 {
		t.Errorf("echo defaults: inflight %d, rate %v, err %v: want open loop at 2000/s", cfg.Inflight, cfg.Rate, err)
	}
}

// jsonOf is r as -json writes it, decoded.
func jsonOf(t *testing.T, r *report) map[string]any {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var cpuFields = []string{"server_cpu_seconds", "server_cpu_us_per_delivery", "loadgen_cpu_us_per_delivery"}

// checkClosedLoop checks a quiet closed-loop echo run of conns connections, inflight
// requests each, against a server with /stats.
func checkClosedLoop(t *testing.T, r *report, conns, inflight int) {
	t.Helper()
	checkQuiet(t, r, conns)
	checkLoad(t, r) // every request answered once, a latency sample per answer
	l := r.Load
	if r.Settings.Inflight != inflight || r.Settings.Rate != 0 {
		t.Errorf("settings %+v: want inflight %d, rate 0", r.Settings, inflight)
	}
	if l.Sent < int64(conns*inflight) || l.Unanswered != 0 || l.Deliveries != l.Sent {
		t.Errorf("sent %d (at least the first %d), answers %d, unanswered %d", l.Sent, conns*inflight, l.Deliveries, l.Unanswered)
	}
	// The CPU figures: present and positive, over the answers received in the load phase.
	if l.CPUDeliveries == nil || *l.CPUDeliveries <= 0 || *l.CPUDeliveries > l.Deliveries || l.CPUWindowSeconds <= 0 {
		t.Errorf("cpu window: %v deliveries of %d, %v s", l.CPUDeliveries, l.Deliveries, l.CPUWindowSeconds)
	}
	load, _ := jsonOf(t, r)["load"].(map[string]any)
	for _, k := range cpuFields {
		if f, ok := load[k].(float64); !ok || f <= 0 {
			t.Errorf("load.%s = %v, want a positive number (skipped: %q)", k, load[k], l.ServerCPUSkipped)
		}
	}
	if l.ServerCPUSkipped != "" {
		t.Errorf("server_cpu_skipped %q with /stats there", l.ServerCPUSkipped)
	}
	var out bytes.Buffer
	r.print(&out)
	for _, s := range []string{"closed loop: " + strconv.Itoa(inflight) + " in flight per connection", "µs per delivery", "nothing lost"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the table does not say %q:\n%s", s, out.String())
		}
	}
}

func TestClosedLoopEchoAgainstOwnServer(t *testing.T) {
	t.Parallel()
	// Two processes: the worker gets -inflight in its part and answers the marks.
	r := runLoadgen(t, "-scenario", "echo", "-inflight", "2", "-conns", "120", "-per-proc", "60", "-duration", "1s",
		"-connect-rate", "2000", "-concurrency", "20", "-progress", "0")
	if !r.SelfStartedServer || r.Processes != 2 {
		t.Errorf("self-started %v, processes %d", r.SelfStartedServer, r.Processes)
	}
	checkClosedLoop(t, r, 120, 2)
}

func TestClosedLoopEchoAgainstInProcessServer(t *testing.T) {
	t.Parallel()
	_, url := inProcessServer(t)
	r := runLoadgen(t, "-url", url, "-scenario", "echo", "-inflight", "1", "-conns", "50", "-duration", "1s",
		"-connect-rate", "2000", "-concurrency", "20", "-progress", "0")
	checkClosedLoop(t, r, 50, 1)
}

// A closed loop against a server that drops requests: each dropped request is counted
// unanswered (and lost), every other one answered, and without /stats the server's CPU
// figures are left out with the reason.
func TestClosedLoopEchoCountsDroppedRequests(t *testing.T) {
	t.Parallel()
	var dropped atomic.Int64
	url := startFaultyServer(t, &faultyServer{dropEcho: func(n int64) bool {
		if n%50 != 0 {
			return false
		}
		dropped.Add(1)
		return true
	}})
	r := runLoadgen(t, "-url", url, "-stats", "none", "-scenario", "echo", "-inflight", "4", "-conns", "10",
		"-duration", "1s", "-drain", "300ms", "-progress", "0")
	l := r.Load
	if l.Sent == 0 || dropped.Load() == 0 || l.Unanswered != dropped.Load() || l.Lost != l.Unanswered || l.Deliveries+l.Unanswered != l.Sent || l.Expected != l.Sent {
		t.Errorf("sent %d, answers %d, expected %d, lost %d, unanswered %d, the server dropped %d: want every request answered or counted unanswered",
			l.Sent, l.Deliveries, l.Expected, l.Lost, l.Unanswered, dropped.Load())
	}
	if r.nothingLost() || l.Dup != 0 {
		t.Errorf("nothingLost %v, dup %d", r.nothingLost(), l.Dup)
	}
	load, _ := jsonOf(t, r)["load"].(map[string]any)
	for _, k := range cpuFields[:2] {
		if v, ok := load[k]; ok {
			t.Errorf("load.%s = %v with -stats none: want it left out", k, v)
		}
	}
	if f, ok := load["loadgen_cpu_us_per_delivery"].(float64); !ok || f <= 0 {
		t.Errorf("load.loadgen_cpu_us_per_delivery = %v, want a positive number", load["loadgen_cpu_us_per_delivery"])
	}
	var out bytes.Buffer
	r.print(&out)
	if !strings.Contains(out.String(), "server skipped: -stats none") {
		t.Errorf("the table does not say why the server's CPU is missing:\n%s", out.String())
	}
}

func TestSetCPULeavesOutWhatItCannotHave(t *testing.T) {
	at := time.Now()
	snap := func(user, sys int64) srvstats.Snapshot { return srvstats.Snapshot{CPUUserNs: user, CPUSysNs: sys} }
	start := cpuReading{at: at, server: snap(1e9, 5e8), deliveries: 0, cpuNs: 2e9}
	end := cpuReading{at: at.Add(2 * time.Second), server: snap(2e9, 1e9), deliveries: 1000, cpuNs: 2.5e9}

	var l loadReport
	l.setCPU(start, end, "http://x/stats", "")
	if l.ServerCPUSeconds == nil || *l.ServerCPUSeconds != 1.5 || l.ServerCPUUsPerDelivery == nil || *l.ServerCPUUsPerDelivery != 1500 ||
		l.LoadgenCPUUsPerDelivery == nil || *l.LoadgenCPUUsPerDelivery != 500 || *l.CPUDeliveries != 1000 || l.CPUWindowSeconds != 2 {
		t.Errorf("figures %+v", l)
	}

	// No deliveries (idle, churn): the seconds, no per-delivery figure.
	noneEnd := end
	noneEnd.deliveries = 0
	l = loadReport{}
	l.setCPU(start, noneEnd, "http://x/stats", "")
	if l.ServerCPUSeconds == nil || l.ServerCPUUsPerDelivery != nil || l.LoadgenCPUUsPerDelivery != nil {
		t.Errorf("no deliveries: %+v", l)
	}
	if s := l.describeCPU(); !strings.Contains(s, "no deliveries to divide by") {
		t.Errorf("describeCPU %q", s)
	}

	// A server whose /stats has no CPU time, one that failed, and none at all.
	for _, tc := range []struct {
		start, end cpuReading
		statsURL   string
		want       string
	}{
		{cpuReading{at: at}, cpuReading{at: at, deliveries: 5}, "http://x/stats", "reports no CPU time"},
		{start, cpuReading{at: at, serverErr: errors.New("refused")}, "http://x/stats", "when the load phase ended: refused"},
		{cpuReading{at: at, serverErr: errors.New("refused")}, end, "http://x/stats", "when the load phase started: refused"},
		{start, end, "", "-stats none"},
	} {
		l = loadReport{}
		l.setCPU(tc.start, tc.end, tc.statsURL, "-stats none")
		if l.ServerCPUSeconds != nil || l.ServerCPUUsPerDelivery != nil || !strings.Contains(l.ServerCPUSkipped, tc.want) {
			t.Errorf("%+v: server figures %v %v, skipped %q, want left out because %q", tc, l.ServerCPUSeconds, l.ServerCPUUsPerDelivery, l.ServerCPUSkipped, tc.want)
		}
	}

	// A part that did not answer its mark: no deliveries, so no per-delivery figures.
	l = loadReport{}
	l.setCPU(start, cpuReading{at: at, server: snap(3e9, 0), partsErr: errors.New("worker gone")}, "http://x/stats", "")
	if l.ServerCPUSeconds == nil || l.ServerCPUUsPerDelivery != nil || l.CPUDeliveries != nil || l.LoadgenCPUSeconds != nil {
		t.Errorf("parts failed: %+v", l)
	}
}
