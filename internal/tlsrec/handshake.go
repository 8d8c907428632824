package tlsrec

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A Handshake is one connection's TLS server handshake, run by crypto/tls on a Runner
// goroutine over an in-memory connection that the caller feeds: the client's bytes go in
// with Feed, the server's come out of Output. When Done, Result hands over a Conn that
// carries the records from then on, and the goroutine, the tls.Conn and its buffers are
// gone. Its methods are safe for concurrent use.
//
// The caller's loop feeds what its socket reads; when notified, it checks Done, writes
// Output, and once done takes Result and gives rest to the Conn's Open. serveConn in
// main_test.go is a complete blocking version of that loop; docs/tls.md sketches the
// event-loop one.
type Handshake struct {
	r             *Runner
	notify        func()
	local, remote net.Addr
	timer         *time.Timer
	timerRef      *atomic.Pointer[Handshake]

	mu      sync.Mutex
	cond    sync.Cond
	in      []byte // the client's bytes that crypto/tls has not read yet
	out     []byte // the server's bytes that Output has not taken yet
	started bool   // scheduled on the Runner
	done    bool
	err     error
	conn    *Conn
	rest    []byte
	state   tls.ConnectionState

	// The rest belongs to the handshake goroutine (hsConn's Read and Write, keyCapture).
	inCursor recordCursor
	tk       takeover
}

// recordCursor follows a record stream a few bytes at a time.
type recordCursor struct {
	hdr      [headerLen]byte
	hdrN     int
	bodyLeft int
}

// next is how many of avail bytes belong to the current header or body, at most max.
// started reports a header just completed; its type is c.hdr[0].
func (c *recordCursor) next(avail []byte, max int) (n int, started bool) {
	if c.hdrN < headerLen {
		n = min(headerLen-c.hdrN, len(avail), max)
		copy(c.hdr[c.hdrN:], avail[:n])
		c.hdrN += n
		if c.hdrN == headerLen {
			c.bodyLeft = recordLen(c.hdr[:])
			started = true
			if c.bodyLeft == 0 {
				c.hdrN = 0
			}
		}
		return n, started
	}
	n = min(c.bodyLeft, len(avail), max)
	c.bodyLeft -= n
	if c.bodyLeft == 0 {
		c.hdrN = 0
	}
	return n, false
}

// Feed hands the handshake bytes its client sent; they are copied. The first bytes
// schedule it on the Runner, which may refuse it (ErrBusy). After the handshake failed
// it returns its error; after it succeeded, ErrHandshakeDone (the bytes were not taken).
func (h *Handshake) Feed(b []byte) error {
	h.mu.Lock()
	if h.done {
		err := h.err
		h.mu.Unlock()
		if err == nil {
			err = ErrHandshakeDone
		}
		return err
	}
	if len(h.in)+len(b) > h.r.opts.MaxHandshakeInput {
		h.mu.Unlock()
		h.fail(ErrHandshakeInput, false)
		return ErrHandshakeInput
	}
	h.in = append(h.in, b...)
	start := !h.started && len(h.in) > 0
	if start {
		h.started = true
	}
	h.cond.Signal()
	h.mu.Unlock()
	if start {
		if err := h.r.schedule(h); err != nil {
			h.fail(err, false)
			return err
		}
	}
	return nil
}

// Output appends what the server has written since the last call to dst. Once Done
// reports true, it holds everything the handshake wrote, alerts of a failure included.
func (h *Handshake) Output(dst []byte) []byte {
	h.mu.Lock()
	dst = append(dst, h.out...)
	h.out = nil
	h.mu.Unlock()
	return dst
}

// Done reports whether the handshake has ended, successfully or not.
func (h *Handshake) Done() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.done
}

// Result is the outcome of a handshake that is Done: the Conn that carries the records
// and rest, the client's bytes after its last handshake record (already records for the
// Conn: give them to Open), or the error. Send Output before anything Conn seals.
func (h *Handshake) Result() (c *Conn, rest []byte, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.done {
		return nil, nil, errors.New("tlsrec: handshake not done")
	}
	return h.conn, h.rest, h.err
}

// ConnectionState is crypto/tls's state of a successful handshake (version, suite,
// ALPN, server name, peer certificates), the zero value otherwise.
func (h *Handshake) ConnectionState() tls.ConnectionState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// Abort ends the handshake (the connection was closed): its goroutine, if any, returns
// and a queued handshake never gets one. notify is not called.
func (h *Handshake) Abort() { h.fail(ErrAborted, false) }

// fail ends the handshake with err unless it has ended already.
func (h *Handshake) fail(err error, notify bool) {
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return
	}
	h.done, h.err, h.in = true, err, nil
	h.cond.Broadcast()
	h.mu.Unlock()
	h.stopTimer()
	if notify {
		h.notify()
	}
}

func (h *Handshake) stopTimer() {
	h.timer.Stop()
	h.timerRef.Store(nil)
}

// run is the handshake goroutine's part.
func (h *Handshake) run() {
	if h.Done() {
		return
	}
	tc := tls.Server(hsConn{h}, h.r.base)
	err := tc.Handshake()
	var c *Conn
	var cs tls.ConnectionState
	if err == nil {
		cs = tc.ConnectionState()
		c, err = h.tk.conn(cs)
	}
	h.tk = takeover{} // the secrets and scratch buffers go with the tls.Conn
	h.mu.Lock()
	if h.done { // timed out or aborted meanwhile: that error stands
		h.mu.Unlock()
		return
	}
	h.done, h.err = true, err
	if err == nil {
		h.conn, h.rest, h.state = c, h.in, cs
	}
	h.in = nil
	h.mu.Unlock()
	h.stopTimer()
	h.notify()
}

// keyLogged receives a secret from keyCapture.
func (h *Handshake) keyLogged(label string, random, secret []byte) {
	h.tk.keyLogged(label, random, secret)
}

// hsConn is the net.Conn crypto/tls runs the handshake over.
type hsConn struct{ h *Handshake }

// Read waits for the client's bytes and returns them one record piece at a time, so
// that crypto/tls never reads past the client's last handshake record: what follows is
// for the Conn.
func (c hsConn) Read(p []byte) (int, error) {
	h := c.h
	h.mu.Lock()
	for len(h.in) == 0 && !h.done {
		h.cond.Wait()
	}
	if h.done {
		h.mu.Unlock()
		return 0, net.ErrClosed
	}
	n, started := h.inCursor.next(h.in, len(p))
	copy(p, h.in[:n])
	h.in = h.in[n:]
	h.mu.Unlock()
	if started {
		h.tk.clientRecord(h.inCursor.hdr[0])
	}
	return n, nil
}

// Write queues the server's bytes for Output and never fails while the handshake runs:
// crypto/tls's write errors are sticky.
func (c hsConn) Write(p []byte) (int, error) {
	h := c.h
	h.tk.serverBytes(p)
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return 0, net.ErrClosed
	}
	first := len(h.out) == 0
	h.out = append(h.out, p...)
	h.mu.Unlock()
	if first {
		h.notify()
	}
	return len(p), nil
}

func (c hsConn) Close() error {
	c.h.fail(ErrAborted, false)
	return nil
}

func (c hsConn) LocalAddr() net.Addr  { return c.h.local }
func (c hsConn) RemoteAddr() net.Addr { return c.h.remote }

// The handshake's time limit is the Runner's timer, which closes this conn.
func (c hsConn) SetDeadline(time.Time) error      { return nil }
func (c hsConn) SetReadDeadline(time.Time) error  { return nil }
func (c hsConn) SetWriteDeadline(time.Time) error { return nil }
