// Package prometheus exports a livepoll server's counters to Prometheus.
//
// A Collector reads [live.Server.Stats] when Prometheus scrapes it: no goroutine, no
// polling, nothing to stop. Register one per server:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(livepollprom.New(server, livepollprom.Options{}))
//	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every metric is named livepoll_*, in base units; counters end in _total. Sessions closed
// are one counter, livepoll_sessions_closed_total, with a reason label holding the kinds of
// [live.ClosedStats] (normal, eof, protocol, invalid_utf8, too_large, queue_full, timeout,
// shutdown, panic, error). Several servers in one process are told apart by
// Options.ConstLabels, e.g. {"server": "chat"}.
package prometheus
