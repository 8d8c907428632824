//go:build linux

package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/livepoll/livepoll/internal/srvstats"
)

// cpuReading is one end of the load phase's CPU window: the server's /stats and every
// part's mark, taken together.
type cpuReading struct {
	at         time.Time // when both reads had finished
	server     srvstats.Snapshot
	serverErr  error // the server's reading failed
	deliveries int64 // all parts
	cpuNs      int64 // all parts' processes
	partsErr   error
}

// readCPU reads the server's CPU (statsURL "": none) and every part's mark at once, so
// that both count the same stretch of load.
func readCPU(ctx context.Context, parts []part, statsURL string) cpuReading {
	var r cpuReading
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	if statsURL != "" {
		wg.Go(func() { r.server, r.serverErr = srvstats.Fetch(ctx, statsURL, false) })
	}
	marks := make([]mark, len(parts))
	r.partsErr = forEachPart(parts, func(i int, p part) (err error) {
		marks[i], err = p.mark(ctx)
		return err
	})
	wg.Wait()
	r.at = time.Now()
	for _, m := range marks {
		r.deliveries += m.Deliveries
		r.cpuNs += m.CPUNs
	}
	return r
}

// setCPU fills in the load phase's CPU figures from its two readings; serverSkipped says
// why there is no server reading when statsURL was "" for them.
func (l *loadReport) setCPU(start, end cpuReading, statsURL, serverSkipped string) {
	l.CPUWindowSeconds = end.at.Sub(start.at).Seconds()
	var deliveries int64
	if start.partsErr == nil && end.partsErr == nil {
		deliveries = end.deliveries - start.deliveries
		l.CPUDeliveries = new(deliveries)
		l.LoadgenCPUSeconds = new(float64(end.cpuNs-start.cpuNs) / 1e9)
		if deliveries > 0 {
			l.LoadgenCPUUsPerDelivery = new(float64(end.cpuNs-start.cpuNs) / 1e3 / float64(deliveries))
		}
	}
	switch {
	case statsURL == "":
		l.ServerCPUSkipped = serverSkipped
		if l.ServerCPUSkipped == "" {
			l.ServerCPUSkipped = "no /stats"
		}
		return
	case start.serverErr != nil:
		l.ServerCPUSkipped = fmt.Sprintf("/stats did not answer when the load phase started: %v", start.serverErr)
		return
	case end.serverErr != nil:
		l.ServerCPUSkipped = fmt.Sprintf("/stats did not answer when the load phase ended: %v", end.serverErr)
		return
	}
	ns := (end.server.CPUUserNs + end.server.CPUSysNs) - (start.server.CPUUserNs + start.server.CPUSysNs)
	if end.server.CPUUserNs+end.server.CPUSysNs == 0 {
		// A /stats without CPU figures (not Linux, or an older server): 0 is no figure.
		l.ServerCPUSkipped = "the server's /stats reports no CPU time (cpu_user_ns, cpu_sys_ns are 0)"
		return
	}
	l.ServerCPUSeconds = new(float64(ns) / 1e9)
	if deliveries > 0 {
		l.ServerCPUUsPerDelivery = new(float64(ns) / 1e3 / float64(deliveries))
	}
}

// describeCPU is the report's line on the load phase's CPU.
func (l *loadReport) describeCPU() string {
	var s string
	per := func(us *float64) string {
		if us == nil {
			return "no deliveries to divide by"
		}
		return fmt.Sprintf("%.2f µs per delivery", *us)
	}
	if l.ServerCPUSeconds != nil {
		s = fmt.Sprintf("server %.2f s (%s)", *l.ServerCPUSeconds, per(l.ServerCPUUsPerDelivery))
	} else {
		s = "server skipped: " + l.ServerCPUSkipped
	}
	if l.LoadgenCPUSeconds != nil {
		s += fmt.Sprintf("; loadgen %.2f s (%s)", *l.LoadgenCPUSeconds, per(l.LoadgenCPUUsPerDelivery))
	}
	if l.CPUDeliveries != nil {
		s += fmt.Sprintf("; %d deliveries in %.2f s", *l.CPUDeliveries, l.CPUWindowSeconds)
	}
	return s
}
