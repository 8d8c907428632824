package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/livepoll/livepoll/bench/internal/chart"
	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/bench/internal/slope"
)

// The parts of the measurement programs' JSON that the summary uses.

// memResult is memslope's Result; the /stats samples are not needed here.
type memResult struct {
	Impl string `json:"impl"`
	slope.Result[json.RawMessage]
}

type fanResult struct {
	Impl   string `json:"impl"`
	Client *struct {
		Lost    int64 `json:"lost"`
		Dup     int64 `json:"dup"`
		Closed  int64 `json:"closed"`
		Latency struct {
			P50  float64 `json:"p50_us"`
			P99  float64 `json:"p99_us"`
			P999 float64 `json:"p999_us"`
			Max  float64 `json:"max_us"`
		} `json:"latency"`
	} `json:"client"`
	PerSec   float64 `json:"deliveries_per_sec"`
	CPUPerOp float64 `json:"cpu_us_per_delivery"`
	Error    string  `json:"error"`
}

// loadgenResult is what compare keeps of a loadgen report.
type loadgenResult struct {
	Impl   string         `json:"impl"`
	Report map[string]any `json:"report"`
}

type results struct {
	memory         []memResult
	fanout, latest []fanResult
	window16       []fanResult
	echo, connect  []loadgenResult
}

// load reads whatever parts exist in dir.
func load(dir string) (*results, error) {
	r := &results{}
	for name, v := range map[string]any{
		"memory.json": &r.memory, "fanout.json": &r.fanout, "latency.json": &r.latest, "window16.json": &r.window16,
		"echo.json": &r.echo, "connect.json": &r.connect,
	} {
		if err := readJSON(filepath.Join(dir, name), v); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return r, nil
}

type row struct {
	impl, metric string
	value        float64
	unit         string
}

func (r *results) rows() []row {
	var rows []row
	add := func(impl, metric string, v float64, unit string) { rows = append(rows, row{impl, metric, v, unit}) }
	for _, m := range r.memory {
		if m.Error != "" {
			continue
		}
		add(m.Impl, "rss_per_conn", m.RSSPerConn, "bytes")
		add(m.Impl, "heap_stack_per_conn", m.HeapStackPerConn, "bytes")
		add(m.Impl, "goroutines_per_conn", m.GoroutinesPerConn, "")
		add(m.Impl, "fds_per_conn", m.FDsPerConn, "")
	}
	for _, f := range r.fanout {
		if f.Error != "" || f.Client == nil {
			continue
		}
		add(f.Impl, "fanout_deliveries_per_sec", f.PerSec, "1/s")
		add(f.Impl, "fanout_cpu_per_delivery", f.CPUPerOp, "us")
		add(f.Impl, "fanout_lost", float64(f.Client.Lost), "messages")
	}
	for _, f := range r.window16 {
		if f.Error != "" || f.Client == nil {
			continue
		}
		add(f.Impl, "window16_deliveries_per_sec", f.PerSec, "1/s")
		add(f.Impl, "window16_cpu_per_delivery", f.CPUPerOp, "us")
		add(f.Impl, "window16_lost", float64(f.Client.Lost), "messages")
	}
	for _, f := range r.latest {
		if f.Error != "" || f.Client == nil {
			continue
		}
		add(f.Impl, "rate2_p50", f.Client.Latency.P50/1000, "ms")
		add(f.Impl, "rate2_p99", f.Client.Latency.P99/1000, "ms")
		add(f.Impl, "rate2_p999", f.Client.Latency.P999/1000, "ms")
		add(f.Impl, "rate2_lost", float64(f.Client.Lost), "messages")
	}
	for _, e := range r.echo {
		for _, m := range []struct {
			name, unit string
			path       []string
		}{
			{"echo_per_sec", "1/s", []string{"load", "deliveries_per_sec"}},
			{"echo_p50", "ms", []string{"load", "latency", "p50_ms"}},
			{"echo_p99", "ms", []string{"load", "latency", "p99_ms"}},
			{"echo_lost", "messages", []string{"load", "lost"}},
		} {
			if v, ok := num(e.Report, m.path...); ok {
				add(e.Impl, m.name, v, m.unit)
			}
		}
	}
	for _, c := range r.connect {
		if v, ok := num(c.Report, "connections", "connect_rate_per_sec"); ok {
			add(c.Impl, "connect_per_sec", v, "1/s")
		}
	}
	return rows
}

// runLoadgen starts each implementation's server and points cmd/loadgen at it.
func runLoadgen(ctx context.Context, bin, exe string, p part) error {
	dir, err := harness.BenchDir()
	if err != nil {
		return err
	}
	var all []loadgenResult
	for _, impl := range strings.Split(*impls, ",") {
		srvBin, err := harness.Build(ctx, dir, impl, bin)
		if err != nil {
			return err
		}
		srv, err := harness.StartServer(srvBin, filepath.Join(bin, impl+".log"), 10*time.Minute)
		if err != nil {
			return err
		}
		report := filepath.Join(bin, p.name+"-"+impl+".json")
		args := append([]string{"-url", "ws://" + srv.Addr + "/ws", "-json", report}, p.args...)
		err = run(ctx, exe, args...)
		srv.Stop(2 * time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", impl, err)
		}
		res := loadgenResult{Impl: impl}
		if err := readJSON(report, &res.Report); err != nil {
			return err
		}
		all = append(all, res)
	}
	return writeJSON(filepath.Join(*out, p.name+".json"), all)
}

// drawCharts writes one PNG per comparison that has data.
func drawCharts(dir string, r *results) error {
	var charts []func() error
	if len(r.memory) > 0 {
		var rss, gor []chart.Series
		for _, m := range r.memory {
			if m.Error != "" {
				continue
			}
			s := chart.Series{Name: m.Impl}
			for _, st := range m.Steps {
				if st.Conns == 0 {
					continue
				}
				s.X = append(s.X, float64(st.Conns))
				s.Y = append(s.Y, (float64(st.RSS)-float64(m.Idle.RSS))/float64(st.Conns)/1024)
			}
			rss = append(rss, s)
			gor = append(gor, chart.Series{Name: m.Impl, Y: []float64{m.GoroutinesPerConn, m.FDsPerConn}})
		}
		charts = append(charts,
			func() error {
				return chart.Line(filepath.Join(dir, "memory.png"), chart.Chart{
					Title:  "Server RSS per idle connection: (RSS at N - RSS idle) / N",
					XLabel: "idle subscribed connections", YLabel: "KiB per connection", Series: rss})
			},
			func() error {
				return chart.Bars(filepath.Join(dir, "goroutines-fds.png"), chart.Chart{
					Title: "Goroutines and file descriptors per connection (slope)", YLabel: "per connection",
					Groups: []string{"goroutines", "fds"}, Series: gor})
			})
	}
	bars := func(file, title, ylabel string, groups []string, get func(i int) (string, []float64, bool), n int) {
		var ss []chart.Series
		for i := range n {
			if name, ys, ok := get(i); ok {
				ss = append(ss, chart.Series{Name: name, Y: ys})
			}
		}
		if len(ss) > 0 {
			charts = append(charts, func() error {
				return chart.Bars(filepath.Join(dir, file), chart.Chart{Title: title, YLabel: ylabel, Groups: groups, Series: ss})
			})
		}
	}
	bars("fanout.png", "Fan-out to 10k subscribers, closed-loop publisher", "deliveries/s", []string{"1 message in flight", "16 messages in flight"},
		func(i int) (string, []float64, bool) {
			f := r.fanout[i]
			ys := []float64{f.PerSec, math.NaN()}
			for _, w := range r.window16 {
				if w.Impl == f.Impl && w.Error == "" && w.Client != nil {
					ys[1] = w.PerSec
				}
			}
			return f.Impl, ys, f.Error == "" && f.Client != nil
		}, len(r.fanout))
	bars("latency.png", "Publish-to-receive latency at 2 msg/s to 10k subscribers", "milliseconds", []string{"p50", "p99", "p99.9"},
		func(i int) (string, []float64, bool) {
			f := r.latest[i]
			if f.Error != "" || f.Client == nil {
				return "", nil, false
			}
			l := f.Client.Latency
			return f.Impl, []float64{l.P50 / 1000, l.P99 / 1000, l.P999 / 1000}, true
		}, len(r.latest))
	bars("echo.png", "Echo round trips per second", "round trips/s", []string{"echo"},
		func(i int) (string, []float64, bool) {
			v, ok := num(r.echo[i].Report, "load", "deliveries_per_sec")
			return r.echo[i].Impl, []float64{v}, ok
		}, len(r.echo))
	bars("connect.png", "Connect rate (handshakes/s, bounded by loadgen's -connect-rate)", "connections/s", []string{"connect"},
		func(i int) (string, []float64, bool) {
			v, ok := num(r.connect[i].Report, "connections", "connect_rate_per_sec")
			return r.connect[i].Impl, []float64{v}, ok
		}, len(r.connect))
	for _, draw := range charts {
		if err := draw(); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "README.txt"), []byte("Written by: cd bench && go run ./cmd/compare\n"), 0o644)
}

// num finds a number in a decoded JSON report by its path of keys.
func num(m map[string]any, path ...string) (float64, bool) {
	var v any = m
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return 0, false
		}
		v = obj[k]
	}
	f, ok := v.(float64)
	return f, ok
}
