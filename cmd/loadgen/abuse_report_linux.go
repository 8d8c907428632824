//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/livepoll/livepoll/internal/srvstats"
)

// abuserReport is one abuser kind's fate.
type abuserReport struct {
	Count int `json:"count"` // asked for
	// ClosedBy counts the connections the server closed (or that broke), by
	// wsfleet.Reason: close_<code>, reset, eof, timeout, write_error, ...
	ClosedBy  map[string]int64 `json:"closed_by"`
	OpenAtEnd int64            `json:"open_at_end"` // still open when the run ended
	BytesSent int64            `json:"bytes_sent"`  // whole frames written
	// BytesReceived is what they read during the run (nonreaders: nothing).
	BytesReceived int64 `json:"bytes_received"`
	// BytesDrained is, for nonreaders and slowreaders, what was waiting for them when the
	// run ended, read to learn their fate (what the server and the socket buffers held).
	BytesDrained int64 `json:"bytes_drained,omitempty"`
	// WritesBlocked counts connections whose last write was still waiting when the run
	// ended: the server had stopped reading them (backpressure), without closing them.
	WritesBlocked  int64            `json:"writes_blocked,omitempty"`
	Cycles         int64            `json:"cycles,omitempty"`          // churners: connect, subscribe, close cycles
	DialFailed     map[string]int64 `json:"dial_failed,omitempty"`     // failed dials by error kind (churners: every cycle's)
	NeverConnected int64            `json:"never_connected,omitempty"` // abusers whose first dial failed
}

// abuseReport is the abuse scenario's part of the report; the healthy clients' latency
// and losses are the echo figures under load.
type abuseReport struct {
	Flooders    *abuserReport `json:"flooders,omitempty"`
	NonReaders  *abuserReport `json:"nonreaders,omitempty"`
	SlowReaders *abuserReport `json:"slowreaders,omitempty"`
	Churners    *abuserReport `json:"churners,omitempty"`
	PingFlood   *abuserReport `json:"pingflood,omitempty"`
	Server      *abuseServer  `json:"server,omitempty"`
	// ServerSkipped says why there are no server figures (no /stats).
	ServerSkipped string `json:"server_skipped,omitempty"`
}

// abuseServer is the server's memory around the abuse: /stats?gc=1 before the abusers
// connect and after they are closed, and the peaks of /stats (no GC) read every 250 ms
// while they run.
type abuseServer struct {
	Before             srvstats.Snapshot `json:"before"`
	PeakRSSBytes       uint64            `json:"peak_rss_bytes"`
	PeakHeapInuseBytes uint64            `json:"peak_heap_inuse_bytes"`
	PeakGoroutines     int               `json:"peak_goroutines"`
	Samples            int               `json:"samples"` // readings during the run
	After              srvstats.Snapshot `json:"after"`
}

func (r *abuseReport) set(kinds map[string]*abuserReport) {
	r.Flooders, r.NonReaders, r.SlowReaders = kinds[kindFlooder], kinds[kindNonReader], kinds[kindSlowReader]
	r.Churners, r.PingFlood = kinds[kindChurner], kinds[kindPingFlood]
}

// kinds lists the kinds present, in report order.
func (r *abuseReport) kinds() []struct {
	name string
	rep  *abuserReport
} {
	var out []struct {
		name string
		rep  *abuserReport
	}
	for _, k := range []struct {
		name string
		rep  *abuserReport
	}{{kindFlooder, r.Flooders}, {kindNonReader, r.NonReaders}, {kindSlowReader, r.SlowReaders}, {kindChurner, r.Churners}, {kindPingFlood, r.PingFlood}} {
		if k.rep != nil {
			out = append(out, k)
		}
	}
	return out
}

// statsPeaks polls /stats (no GC) until stopped and keeps the peaks.
type statsPeaks struct {
	once sync.Once
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	s    abuseServer
}

func pollPeaks(url string) *statsPeaks {
	p := &statsPeaks{stop: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s, err := srvstats.Fetch(ctx, url, false)
			cancel()
			if err == nil {
				p.mu.Lock()
				p.s.Samples++
				p.s.PeakRSSBytes = max(p.s.PeakRSSBytes, s.RSSBytes)
				p.s.PeakHeapInuseBytes = max(p.s.PeakHeapInuseBytes, s.HeapInuse)
				p.s.PeakGoroutines = max(p.s.PeakGoroutines, s.Goroutines)
				p.mu.Unlock()
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	})
	return p
}

// end stops the polling and returns the peaks; it may be called again.
func (p *statsPeaks) end() abuseServer {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s
}

// printAbuse writes the abuse rows of the table.
func (r *report) printAbuse(row func(k, format string, args ...any)) {
	a := r.Abuse
	if s := a.Server; s != nil {
		row("server during abuse", "RSS %s before, %s peak, %s after; heap in use %s, %s peak, %s after; goroutines %d, %d peak, %d after (%d readings)",
			mib(s.Before.RSSBytes), mib(s.PeakRSSBytes), mib(s.After.RSSBytes),
			mib(s.Before.HeapInuse), mib(s.PeakHeapInuseBytes), mib(s.After.HeapInuse),
			s.Before.Goroutines, s.PeakGoroutines, s.After.Goroutines, s.Samples)
	} else if a.ServerSkipped != "" {
		row("server during abuse", "skipped: %s", a.ServerSkipped)
	}
	for _, k := range a.kinds() {
		row("abusers: "+k.name, "%s", k.rep.describe(k.name))
	}
}

// fmtBytes is b in B, KiB or MiB.
func fmtBytes(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// describe is one kind's line in the table.
func (r *abuserReport) describe(kind string) string {
	s := fmt.Sprintf("%d: ", r.Count)
	closed := int64(0)
	for _, n := range r.ClosedBy {
		closed += n
	}
	if kind == kindChurner {
		s += fmt.Sprintf("%d connect-subscribe-close cycles", r.Cycles)
	} else {
		s += fmt.Sprintf("closed by the server %d%s, open at the end %d", closed, describeReasons(r.ClosedBy), r.OpenAtEnd)
	}
	s += fmt.Sprintf("; sent %s, received %s", fmtBytes(r.BytesSent), fmtBytes(r.BytesReceived))
	if r.BytesDrained > 0 {
		s += fmt.Sprintf(", %s waiting for them at the end", fmtBytes(r.BytesDrained))
	}
	if r.WritesBlocked > 0 {
		s += fmt.Sprintf("; %d with a write still blocked at the end (the server stopped reading them)", r.WritesBlocked)
	}
	if r.NeverConnected > 0 {
		s += fmt.Sprintf("; %d never connected", r.NeverConnected)
	}
	if len(r.DialFailed) > 0 {
		s += "; dial failures" + describeReasons(r.DialFailed)
	}
	return s
}

// abusePhase is the abuse scenario's side of a run: the abusers and the server's
// readings around them.
type abusePhase struct {
	abusers  *abuse
	statsURL string
	peaks    *statsPeaks // nil without /stats
	report   abuseReport
}

// startAbusePhase reads the server's memory, connects the abusers and starts them for
// cfg.Duration.
func startAbusePhase(ctx context.Context, cfg config, target string, sources []net.IP, statsURL string) (*abusePhase, error) {
	p := &abusePhase{statsURL: statsURL}
	if statsURL == "" {
		p.report.ServerSkipped = "the server has no /stats (see server figures)"
	} else {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		before, err := srvstats.Fetch(sctx, statsURL, true)
		cancel()
		if err != nil {
			p.report.ServerSkipped = fmt.Sprintf("%s did not answer: %v", statsURL, err)
		} else {
			p.report.Server = &abuseServer{Before: before}
			p.peaks = pollPeaks(statsURL)
		}
	}
	ab, err := startAbuse(ctx, cfg.Abuse, target, sources, time.Now().Add(cfg.Duration))
	if err != nil {
		if p.peaks != nil {
			p.peaks.end()
		}
		return nil, fmt.Errorf("abusers: %w", err)
	}
	p.abusers = ab
	return p, nil
}

// finish reads the abusers' fate, closes them and reads the server's memory after them.
func (p *abusePhase) finish(ctx context.Context) *abuseReport {
	p.report.set(p.abusers.finish())
	p.abusers.close()
	if p.peaks != nil {
		s := p.peaks.end()
		s.Before = p.report.Server.Before
		time.Sleep(500 * time.Millisecond) // the server finishes closing the abusers' sessions
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		after, err := srvstats.Fetch(sctx, p.statsURL, true)
		cancel()
		if err != nil {
			p.report.ServerSkipped = fmt.Sprintf("%s did not answer after the abuse: %v", p.statsURL, err)
		}
		s.After = after
		p.report.Server = &s
	}
	return &p.report
}

// close closes the abusers and stops the polling (if finish did not); it may be
// called again.
func (p *abusePhase) close() {
	p.abusers.close()
	if p.peaks != nil {
		p.peaks.end()
	}
}
