package main

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

// With -compress the server app runs with its -compress flag, every client offers
// permessage-deflate and must have it accepted, and each one, once subscribed, sends an
// echo of about 2 KiB of JSON and waits for the reply, which must arrive compressed: so
// every session has negotiated compression and been through the server's compression
// path once before the fleet idles and the server is sampled.

// echoMessage is connection i's echo request: 2 KiB or so of JSON that compresses about
// as a real message does (to roughly a third with deflate), not a run of one byte.
func echoMessage(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"topic":"echo","data":{"conn":%d,"quotes":[`, i)
	for k := 0; b.Len() < 2000; k++ {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sym":"SYM%03d","bid":%d.%02d,"ask":%d.%02d,"vol":%d}`,
			(i+k*7)%1000, 100+k*13%50, k*31%100, 101+k*13%50, k*17%100, (i+k*977)%100000)
	}
	b.WriteString("]}}")
	return []byte(b.String())
}

// echoes counts the echo replies the fleet's loops receive, and those with RSV1.
type echoes struct {
	replies, compressed atomic.Int64
}

func (e *echoes) handler(c *wsfleet.Conn, f wsfleet.Frame) {
	if f.Op != ws.OpText && f.Op != ws.OpBinary {
		return // a continuation: the servers send whole messages, but count messages, not frames
	}
	e.replies.Add(1)
	if f.RSV1 {
		e.compressed.Add(1)
	}
}

// wait waits until n replies arrived, at most within, and checks they all came compressed.
func (e *echoes) wait(n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for e.replies.Load() < int64(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d echo replies within %v", e.replies.Load(), n, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, z := e.replies.Load(), e.compressed.Load(); r != int64(n) || z != r {
		return fmt.Errorf("echo replies: %d (want %d), %d of them compressed", r, n, z)
	}
	return nil
}
