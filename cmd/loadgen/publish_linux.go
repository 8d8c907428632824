//go:build linux

package main

import (
	"context"
	"time"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

// publisher publishes to every topic in turn from the coordinator's publisher
// connections: message k goes to topic k%topics with that topic's next seq, from
// publisher (k%topics)%len(conns), so one topic's messages always leave through one
// connection and arrive in order.
type publisher struct {
	conns  []*wsfleet.Conn
	loop   *wsfleet.Loop
	topics int
	rate   float64
	size   int

	lastSeq   []int64 // by topic: the last seq sent
	published int64
}

// run publishes at rate until ctx is done.
func (p *publisher) run(ctx context.Context) {
	p.lastSeq = make([]int64, p.topics)
	names := make([]string, p.topics)
	for t := range names {
		names[t] = topicName(t)
	}
	var frame, scratch []byte
	paced(ctx, p.rate, func(k int64, due time.Time) {
		t := int(k % int64(p.topics))
		c := p.conns[t%len(p.conns)]
		if c.Closed() {
			return // counted when it closed
		}
		seq := p.lastSeq[t] + 1
		frame, scratch = publishFrame(frame[:0], scratch, names[t], seq, due.UnixNano(), p.size)
		if err := c.Write(frame, 5*time.Second); err != nil {
			p.loop.Kill(c, err) // counted by the fleet's OnClose, as publisher_<kind>
			return
		}
		p.lastSeq[t] = seq
		p.published++
	})
}
