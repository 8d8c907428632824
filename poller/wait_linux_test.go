package poller

import (
	"testing"
	"time"
)

// The loop waits in the Go runtime's poller by default, and in a blocking epoll_wait when
// that is switched off (or the registration fails): both deliver events and stop on Close.
// Not parallel: it flips waitInRuntime for the pollers it creates.
func TestBothWaysOfWaiting(t *testing.T) {
	for _, inRuntime := range []bool{true, false} {
		waitInRuntime = inRuntime
		p := newPoller(t)
		waitInRuntime = true
		if got := p.park != nil; got != inRuntime {
			t.Fatalf("waitInRuntime %v: parked in the runtime %v", inRuntime, got)
		}
		for range 3 {
			c, r := openSocketpair(t), newRecorder()
			mustAdd(t, p, c.fd, r)
			r.wait(t, Writable)
			r.take()
			peerWrite(t, c.peer, "hello")
			r.wait(t, Readable)
			if n, eof := drainFD(t, c.fd); n != 5 || eof {
				t.Fatalf("waitInRuntime %v: read %d bytes (eof %v), want 5", inRuntime, n, eof)
			}
		}
		// The events came through the runtime's poller, not a silent fallback.
		if got := p.parked.Load(); (got > 0) != inRuntime {
			t.Fatalf("waitInRuntime %v: %d waits ended in the runtime's poller", inRuntime, got)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("waitInRuntime %v: Close: %v", inRuntime, err)
		}
	}
}

// Events that arrive while the loop is between its look and its wait are not lost: a
// peer writes in bursts with no pause, and every write's readiness is seen in time.
func TestParkedLoopSeesEveryBurst(t *testing.T) {
	p := newPoller(t)
	c, r := openSocketpair(t), newRecorder()
	mustAdd(t, p, c.fd, r)
	r.wait(t, Writable)
	r.take()
	for i := range 2000 {
		peerWrite(t, c.peer, "x")
		start := time.Now()
		r.wait(t, Readable) // each wait has waitTimeout
		if d := time.Since(start); d > parkCheck/2 {
			t.Fatalf("burst %d: readiness seen after %v (a lost wakeup caught by the %v check)", i, d, parkCheck)
		}
		r.take()
		drainFD(t, c.fd)
	}
}

// A wait in the runtime ends every parkCheck even without events; the loop looks again
// and goes on delivering. Not parallel: it shortens parkCheck for its poller.
func TestParkCheckExpiresAndLoopGoesOn(t *testing.T) {
	old := parkCheck
	parkCheck = 5 * time.Millisecond
	p := newPoller(t)
	c, r := openSocketpair(t), newRecorder()
	mustAdd(t, p, c.fd, r)
	r.wait(t, Writable)
	r.take()
	time.Sleep(60 * time.Millisecond) // about ten expiries with nothing to report
	peerWrite(t, c.peer, "after")
	r.wait(t, Readable)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	parkCheck = old
}
