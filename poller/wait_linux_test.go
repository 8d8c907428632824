package poller

import "testing"

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
		if err := p.Close(); err != nil {
			t.Fatalf("waitInRuntime %v: Close: %v", inRuntime, err)
		}
	}
}
