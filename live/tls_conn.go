package live

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	"github.com/livepoll/livepoll/internal/tlsrec"
	"github.com/livepoll/livepoll/pool"
)

// tlsConn is the net.Conn of a connection ServeTLS has handshaken, while its upgrade
// request is read and answered (and, where the platform has no poller, for the whole
// session on the portable path): Read opens records, Write seals them. Read and Write
// may run at once (the portable path's reader and writer); the write side, which Read
// also uses for what the read side owes, is under wmu.
type tlsConn struct {
	net.Conn // the TCP connection
	rec      *tlsrec.Conn
	state    tls.ConnectionState

	// read side
	in    []byte // the client's records read with the handshake, not opened yet
	plain []byte // opened, not yet returned by Read
	rbuf  []byte

	wmu  sync.Mutex
	wbuf []byte
}

func (c *tlsConn) Read(p []byte) (int, error) {
	for len(c.plain) == 0 {
		in := c.in
		c.in = nil
		if in == nil {
			if c.rbuf == nil {
				c.rbuf = make([]byte, 4<<10)
			}
			n, err := c.Conn.Read(c.rbuf)
			if n == 0 {
				if err == io.EOF {
					err = c.rec.CloseRead() // io.EOF after close_notify, else truncation
				}
				if err == nil {
					continue
				}
				return 0, err
			}
			in = c.rbuf[:n]
		}
		var err error
		c.plain, err = c.rec.Open(c.plain[:0], in)
		if c.rec.Pending() {
			c.wmu.Lock()
			c.writeLocked(c.rec.SealPending(c.wbuf[:0]))
			c.wmu.Unlock()
		}
		if err != nil && len(c.plain) == 0 {
			return 0, err // sticky in rec: every later Read returns it too
		}
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	return n, nil
}

func (c *tlsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := c.rec.Seal(c.wbuf[:0], p)
	if err != nil {
		return 0, err
	}
	if err := c.writeLocked(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeLocked writes sealed bytes, keeping a small buffer for the next records.
func (c *tlsConn) writeLocked(b []byte) error {
	if cap(b) <= 16<<10 {
		c.wbuf = b[:0]
	} else {
		c.wbuf = nil
	}
	if len(b) == 0 {
		return nil
	}
	_, err := c.Conn.Write(b)
	return err
}

// CloseWrite sends close_notify and shuts the TCP write side (closeAfterAnswer).
func (c *tlsConn) CloseWrite() error {
	c.wmu.Lock()
	_ = c.writeLocked(c.rec.SealClose(c.wbuf[:0]))
	c.wmu.Unlock()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close sends close_notify (unless sent already, or a write is under way: a writer
// blocked on a full socket must not hold the close up) for at most 100 ms and closes.
func (c *tlsConn) Close() error {
	if c.wmu.TryLock() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_ = c.writeLocked(c.rec.SealClose(c.wbuf[:0]))
		c.wmu.Unlock()
	}
	return c.Conn.Close()
}

// takeBuffered returns, in a pooled buffer, the plaintext that came behind the upgrade
// request: what br buffered and what this conn opened but has not handed out (nil if
// none). Neither is used afterwards.
func (c *tlsConn) takeBuffered(br *bufio.Reader) *[]byte {
	n := br.Buffered()
	if n+len(c.plain) == 0 {
		return nil
	}
	pre := pool.Get(n + len(c.plain))
	b, _ := br.Peek(n)
	copy(*pre, b)
	copy((*pre)[n:], c.plain)
	c.plain = nil
	return pre
}
