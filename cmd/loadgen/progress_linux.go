//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/livepoll/livepoll/internal/srvstats"
)

// progressPrinter prints one line per interval on stderr: connections, rates, errors and,
// when the server has /stats, its memory and descriptors.
type progressPrinter struct {
	stopOnce sync.Once
	done     chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex
	phase string
}

func startProgress(cfg config, parts []part, statsURL string, w io.Writer) *progressPrinter {
	p := &progressPrinter{done: make(chan struct{}), phase: "connecting"}
	if cfg.Progress <= 0 {
		return p
	}
	p.wg.Go(func() {
		start := time.Now()
		t := time.NewTicker(cfg.Progress)
		defer t.Stop()
		var last progress
		lastAt := start
		for {
			select {
			case <-p.done:
				return
			case now := <-t.C:
				var cur progress
				for _, pt := range parts {
					cur.add(pt.progress())
				}
				secs := now.Sub(lastAt).Seconds()
				p.mu.Lock()
				phase := p.phase
				p.mu.Unlock()
				line := fmt.Sprintf("loadgen %5.0fs %-10s open %d/%d (+%.0f/s)  ready %d  failed %d  server-closed %d  msgs %.0f/s  errors %d",
					now.Sub(start).Seconds(), phase, cur.Open, cfg.Conns, float64(cur.Connected-last.Connected)/secs,
					cur.Ready, cur.Failed, cur.ServerClosed, float64(cur.Deliveries-last.Deliveries)/secs, cur.Errors)
				if statsURL != "" {
					ctx, cancel := context.WithTimeout(context.Background(), cfg.Progress/2)
					if s, err := srvstats.Fetch(ctx, statsURL, false); err == nil {
						line += fmt.Sprintf("  | server rss %s fds %d goroutines %d", mib(s.RSSBytes), s.FDs, s.Goroutines)
					}
					cancel()
				}
				fmt.Fprintln(w, line)
				last, lastAt = cur, now
			}
		}
	})
	return p
}

func (p *progressPrinter) setPhase(phase string) {
	p.mu.Lock()
	p.phase = phase
	p.mu.Unlock()
}

func (p *progressPrinter) stop() {
	p.stopOnce.Do(func() { close(p.done) })
	p.wg.Wait()
}
