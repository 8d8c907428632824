package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// figure is one chart: groups along x (a metric each), one bar per
// implementation in every group at the median of its runs, with an error bar
// from the smallest to the largest run.
type figure struct {
	file, title, ylabel string
	part                string  // whose implementations take part
	scale               float64 // multiplies every value (units)
	groups              []struct{ label, metric string }
	values              bool // print each median above its bar (a bar of 0 is otherwise invisible)
	// retitle, if set, gives the title from the parts found (what their arguments say).
	retitle func(t *tab) string
}

func fig(file, title, ylabel, part string, scale float64, groups ...string) figure {
	f := figure{file: file, title: title, ylabel: ylabel, part: part, scale: scale}
	for i := 0; i+1 < len(groups); i += 2 {
		f.groups = append(f.groups, struct{ label, metric string }{groups[i], groups[i+1]})
	}
	return f
}

func (f figure) withValues() figure { f.values = true; return f }

func (f figure) withTitle(fn func(t *tab) string) figure { f.retitle = fn; return f }

// figures lists every chart compare draws.
func figures() []figure {
	return []figure{
		fig("memory.png", "Server memory per idle connection (slope)", "KiB per connection", "memory", 1.0/1024,
			"RSS", "rss_per_conn", "heap + stacks", "heap_stack_per_conn"),
		fig("goroutines-fds.png", "Goroutines and file descriptors per idle connection (slope)", "per connection", "memory", 1,
			"goroutines", "goroutines_per_conn", "fds", "fds_per_conn"),
		fig("fanout.png", "Fan-out, closed loop, 1 message in flight", "deliveries/s", "fanout", 1,
			"deliveries/s", "fanout.per_sec").withValues(),
		fig("window16.png", "Fan-out, closed loop, 16 messages in flight", "deliveries/s", "window16", 1,
			"deliveries/s", "window16.per_sec").withValues(),
		fig("cpu.png", "Server CPU per delivery", "µs of CPU per delivery", "fanout", 1,
			"1 in flight", "fanout.cpu_us", "16 in flight", "window16.cpu_us", "2 msg/s", "latency.cpu_us"),
		fig("latency.png", "Publish→receive latency at 2 messages/s", "milliseconds", "latency", 1,
			"p50", "latency.p50", "p90", "latency.p90", "p99", "latency.p99", "p99.9", "latency.p999"),
		fig("echo.png", "Echo round trips per second (open loop, above every server's rate)", "round trips/s", "echo", 1,
			"round trips/s", "echo.per_sec").withValues().withTitle(func(t *tab) string {
			if slices.Contains(t.args("echo"), "-inflight") {
				return "Echo round trips per second (closed loop)"
			}
			return "Echo round trips per second (open loop, above every server's rate)"
		}),
		fig("echocpu.png", "CPU per echo round trip (closed loop)", "µs of CPU per round trip", "echo", 1,
			"server", "echo.server_cpu_us", "loadgen", "echo.loadgen_cpu_us").withValues(),
		fig("losses.png", "Losses: messages lost, requests unanswered, connections closed by the server", "count", "", 1,
			"fan-out lost", "fanout.lost", "fan-out subs closed", "fanout.closed",
			"W=16 lost", "window16.lost", "W=16 subs closed", "window16.closed",
			"2 msg/s lost", "latency.lost", "echo lost", "echo.lost", "echo unanswered", "echo.unanswered",
			"echo conns closed", "echo.server_closed",
			"2 KiB lost", "fanout2k.lost", "2 KiB subs closed", "fanout2k.closed",
			"2 KiB deflate lost", "fanoutz.lost", "2 KiB deflate subs closed", "fanoutz.closed",
			"wss lost", "fanouttls.lost", "wss subs closed", "fanouttls.closed").withValues(),
		fig("connect.png", "Connect rate (200 handshakes in flight)", "handshakes/s", "connect", 1,
			"handshakes/s", "connect.per_sec").withValues(),
		fig("abuse.png", "Healthy echo round trip beside 32 flooders, 4 non-readers, 2 ping floods, 2 churners", "milliseconds", "abuse", 1,
			"p50", "abuse.p50", "p99", "abuse.p99"),
		fig("abuse-memory.png", "Server peak memory under abuse", "MiB", "abuse", 1.0/(1<<20),
			"peak RSS", "abuse.peak_rss", "peak heap", "abuse.peak_heap").withValues(),
		fig("compression-cpu.png", "CPU per delivery, 2 KiB fan-out, plain and deflated", "µs of CPU per delivery", "fanout2k", 1,
			"plain", "fanout2k.cpu_us", "permessage-deflate", "fanoutz.cpu_us").withValues(),
		fig("compression-wire.png", "Bytes on the wire per 2 KiB delivery", "bytes", "fanout2k", 1,
			"plain", "fanout2k.wire_bytes", "permessage-deflate", "fanoutz.wire_bytes").withValues(),
		fig("memoryz.png", "RSS per idle connection, without and with deflate", "bytes per connection", "memoryz", 1,
			"without", "rss_per_conn", "permessage-deflate", "memoryz.rss_per_conn").withValues(),
		fig("memorytls.png", "Server RSS per idle connection, ws and wss (slope)", "KiB per connection", "memorytls", 1.0/1024,
			"ws", "rss_per_conn", "wss", "memorytls.rss_per_conn").withValues(),
		fig("fanouttls.png", "Server CPU per delivery, ws and wss (fan-out, 1 in flight)", "µs of CPU per delivery", "fanouttls", 1,
			"ws", "fanout.cpu_us", "wss", "fanouttls.cpu_us").withValues(),
	}
}

// present keeps the groups of f whose part is in the summary: a chart of parts some of
// which were not run (compression parts beside older results) shows the others only.
// Metrics without a part prefix are the memory part's.
func (f figure) present(t *tab) figure {
	var groups []struct{ label, metric string }
	for _, g := range f.groups {
		part, _, ok := strings.Cut(g.metric, ".")
		if !ok {
			part = "memory"
		}
		if t.has(part) {
			groups = append(groups, g)
		}
	}
	f.groups = groups
	return f
}

// short formats a median for a label above its bar.
func short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// drawCharts writes every figure that has an implementation with data.
func drawCharts(dir string, s *summary) error {
	t := &tab{s: s}
	for _, f := range figures() {
		if f = f.present(t); len(f.groups) == 0 {
			continue
		}
		var impls []string
		known := false // a chart of nothing but "?" (metrics older runs lack) is not drawn
		for _, impl := range s.impls {
			if t.took(f.part, impl) {
				impls = append(impls, impl)
				for _, g := range f.groups {
					known = known || s.st.get(impl, g.metric).ok()
				}
			}
		}
		if len(impls) == 0 || !known {
			continue
		}
		if f.retitle != nil {
			f.title = f.retitle(t)
		}
		if err := f.draw(filepath.Join(dir, f.file), &s.st, impls); err != nil {
			return fmt.Errorf("%s: %w", f.file, err)
		}
	}
	return nil
}

func (f figure) draw(path string, st *stats, impls []string) error {
	p := plot.New()
	p.Title.Text = f.title
	p.Y.Label.Text = f.ylabel
	p.Y.Min = 0
	labels := make([]string, len(f.groups))
	for i, g := range f.groups {
		labels[i] = g.label
	}
	p.NominalX(labels...)
	p.Legend.Top = true
	p.Legend.Left = false
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil // horizontal lines only: vertical ones would cut the groups
	p.Add(grid)

	slot := 0.8 / float64(len(impls)) // share of a group's unit width per bar
	var unknown, values plotter.XYLabels
	notRun := false
	maxY := 0.0
	for i, impl := range impls {
		b := &bars{width: slot * 0.9, color: plotutil.Color(i)}
		var errs struct {
			plotter.XYs
			plotter.YErrors
		}
		for gi, g := range f.groups {
			s := st.get(impl, g.metric)
			x := float64(gi) - 0.4 + slot*(float64(i)+0.5)
			if !s.ok() {
				if impl == "floor" {
					continue // the floor is measured in the 1-in-flight fan-out only
				}
				label := "?"
				if st.why(g.metric, impl) != "" {
					label, notRun = "n/a", true
				}
				unknown.XYs = append(unknown.XYs, plotter.XY{X: x, Y: 0})
				unknown.Labels = append(unknown.Labels, label)
				continue
			}
			med, lo, hi := s.Median*f.scale, s.Min*f.scale, s.Max*f.scale
			b.xs, b.ys = append(b.xs, x), append(b.ys, med)
			errs.XYs = append(errs.XYs, plotter.XY{X: x, Y: med})
			errs.YErrors = append(errs.YErrors, struct{ Low, High float64 }{med - lo, hi - med})
			maxY = math.Max(maxY, hi)
			if f.values {
				values.XYs = append(values.XYs, plotter.XY{X: x, Y: hi})
				values.Labels = append(values.Labels, short(med))
			}
		}
		p.Add(b)
		p.Legend.Add(impl, b)
		if len(errs.XYs) > 0 {
			eb, err := plotter.NewYErrorBars(errs)
			if err != nil {
				return err
			}
			eb.LineStyle.Width = vg.Points(1)
			p.Add(eb)
		}
	}
	if maxY == 0 {
		maxY = 1 // all zero (no losses): keep an axis
	}
	p.Y.Max = maxY * 1.5 // room for the legend above the tallest bar
	if len(values.XYs) > 0 {
		l, err := plotter.NewLabels(values)
		if err != nil {
			return err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign = draw.XCenter
			l.TextStyle[i].Font.Size = vg.Points(8)
		}
		l.Offset = vg.Point{Y: vg.Points(2)}
		p.Add(l)
	}
	if len(unknown.XYs) > 0 {
		l, err := plotter.NewLabels(unknown)
		if err != nil {
			return err
		}
		p.Add(l)
		if slices.Contains(unknown.Labels, "?") {
			p.Title.Text += "  (? = not reported)"
		}
		if notRun && slices.Contains(tlsParts, f.part) {
			p.Title.Text += "  (n/a: not served over wss)"
		} else if notRun {
			p.Title.Text += "  (n/a: no compression)"
		}
	}
	width := vg.Length(max(6, 1.2*float64(len(f.groups))+3)) * vg.Inch
	if strings.HasSuffix(path, "losses.png") {
		p.X.Tick.Label.Rotation = math.Pi / 8
		p.X.Tick.Label.XAlign = draw.XRight
	}
	return p.Save(width, 4*vg.Inch, path)
}

// bars draws rectangles centred on xs in data coordinates, so that error
// bars (also in data coordinates) land on their middles whatever the size.
type bars struct {
	xs, ys []float64
	width  float64 // in x data units
	color  color.Color
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i, x := range b.xs {
		x0, x1 := trX(x-b.width/2), trX(x+b.width/2)
		y0, y1 := trY(0), trY(b.ys[i])
		poly := c.ClipPolygonY([]vg.Point{{X: x0, Y: y0}, {X: x0, Y: y1}, {X: x1, Y: y1}, {X: x1, Y: y0}})
		c.FillPolygon(b.color, poly)
	}
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	for i, x := range b.xs {
		xmin, xmax = math.Min(xmin, x-b.width/2), math.Max(xmax, x+b.width/2)
		ymax = math.Max(ymax, b.ys[i])
	}
	if len(b.xs) == 0 {
		xmin, xmax = 0, 0
	}
	return xmin, xmax, 0, ymax
}

// Thumbnail draws the legend's swatch.
func (b *bars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}})
}
