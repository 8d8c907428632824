package prometheus

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livepoll/livepoll/live"
)

// Source is what a Collector reads: *live.Server satisfies it.
type Source interface {
	Stats() live.Stats
}

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// ConstLabels are added to every metric, e.g. {"server": "chat"} to tell apart the
	// servers of one process. Their names must not be "reason".
	ConstLabels prometheus.Labels
}

// Collector is a prometheus.Collector for one server's Stats. It calls Stats once per
// scrape. Safe for concurrent use, as Prometheus requires.
type Collector struct {
	src   Source
	descs []*prometheus.Desc // descs[i] describes metrics[i]
}

// New returns a Collector reading src. It panics if opts.ConstLabels holds an invalid
// label name, as prometheus.MustRegister would.
func New(src Source, opts Options) *Collector {
	c := &Collector{src: src}
	for _, m := range metrics {
		var variable []string
		if m.label != "" {
			variable = []string{m.label}
		}
		c.descs = append(c.descs, prometheus.NewDesc(namespace+"_"+m.name, m.help, variable, opts.ConstLabels))
	}
	return c
}

// Describe sends the descriptors of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the server's Stats once and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	for i, m := range metrics {
		for _, s := range m.series {
			var labelValues []string
			if m.label != "" {
				labelValues = []string{s.labelValue}
			}
			ch <- prometheus.MustNewConstMetric(c.descs[i], m.kind, s.value(&st), labelValues...)
		}
	}
}
