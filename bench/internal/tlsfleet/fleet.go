// Package tlsfleet is the wss:// client fleet of the bench programs (cmd/memslope -tls,
// cmd/fanout -tls). internal/wsfleet, the ws:// fleet, detaches each socket from the Go
// runtime and reads it from a few epoll loops; a TLS connection cannot be read that way
// (crypto/tls needs a net.Conn and a goroutine to block in Read), so here each
// connection is a crypto/tls client connection read by a goroutine of its own. That costs
// the client a goroutine, a tls.Conn and a small read buffer per connection (about
// 15–25 KB); only the servers' figures are measured, and the clients run in their own
// process.
//
// Like wsfleet, a Fleet answers pings and the server's close frame, and hands every text
// or binary frame to its handler (wsfleet.Frame: the payload is valid until the handler
// returns). The handler runs on the connection's goroutine, so for one connection frames
// come in order and never concurrently, but handlers of different connections run at
// the same time.
package tlsfleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

// errEOF is a server that closed the connection without a close frame.
var errEOF = fmt.Errorf("tlsfleet: connection closed by server without a close frame: %w", io.EOF)

// readSize is each connection's read buffer: what one Read takes from the tls.Conn's
// plaintext (a longer record comes in several reads).
const readSize = 1 << 10

// maxFrame bounds a server frame (the tail buffer grows as bytes arrive, never on a
// declared length); a longer one is an error wrapping wsfleet.ErrProtocol.
const maxFrame = 1 << 26

// Handler is called on a connection's goroutine for each text, binary or continuation
// frame.
type Handler func(c *Conn, f wsfleet.Frame)

// Conn is one wss client connection.
type Conn struct {
	ID int // the caller's index
	// Seq, Lost and Dup are for the Handler's bookkeeping; only the connection's
	// goroutine may touch them until Fleet.Stop has returned.
	Seq, Lost, Dup int64

	nc     net.Conn // *tls.Conn
	wmu    sync.Mutex
	closed atomic.Bool
	err    atomic.Pointer[error]
}

// Closed reports whether the connection has been closed (by the server, on an error, or
// by CloseAll).
func (c *Conn) Closed() bool { return c.closed.Load() }

// Err returns why the connection closed (nil while open or after CloseAll): a
// *wsfleet.CloseError for the server's close frame, an EOF, a read or write error.
func (c *Conn) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Write writes b (whole frames) within timeout. It is safe for concurrent use;
// concurrent writes do not interleave.
func (c *Conn) Write(b []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return wsfleet.ErrClosed
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.nc.Write(b)
	return err
}

// Fleet is a set of connections, each read by its own goroutine.
type Fleet struct {
	// Closed counts connections closed by the server or on errors.
	Closed atomic.Int64

	handler  Handler
	stopping atomic.Bool
	lastErr  atomic.Pointer[error]
	readers  sync.WaitGroup

	mu    sync.Mutex
	conns []*Conn
}

// New makes a fleet whose connections' frames go to handler (nil: dropped).
func New(handler Handler) *Fleet { return &Fleet{handler: handler} }

// LastErr is the last error that closed a connection, for reporting.
func (f *Fleet) LastErr() error {
	if p := f.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// add starts reading c, leftover first (bytes that came behind the handshake).
func (f *Fleet) add(c *Conn, leftover []byte) {
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	f.readers.Add(1)
	go f.read(c, leftover)
}

func (f *Fleet) read(c *Conn, tail []byte) {
	defer f.readers.Done()
	buf := make([]byte, readSize)
	if len(tail) > 0 {
		var err error
		if tail, err = f.consume(c, tail[:0], tail); err != nil {
			f.close(c, err)
			return
		}
	}
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			var perr error
			if tail, perr = f.consume(c, tail, buf[:n]); perr != nil {
				f.close(c, perr)
				return
			}
		}
		if err != nil {
			if f.stopping.Load() {
				return // Stop woke the read: the connection stays open
			}
			if errors.Is(err, io.EOF) {
				err = errEOF
			}
			f.close(c, err)
			return
		}
	}
}

// errClosedByServer stops parsing after the server's close frame was answered.
var errClosedByServer = errors.New("closed by server")

// consume parses tail+data and returns the unparsed rest (in tail's storage) or the
// error that ends the connection.
func (f *Fleet) consume(c *Conn, tail, data []byte) ([]byte, error) {
	if len(tail) > 0 {
		tail = append(tail, data...)
		data = tail
	}
	used, err := wsfleet.ParseFrames(data, maxFrame, func(fr wsfleet.Frame) error {
		switch fr.Op {
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if f.handler != nil {
				f.handler(c, fr)
			}
		case ws.OpPing:
			return c.Write(wsfleet.AppendClientFrame(nil, ws.OpPong, fr.Payload), time.Second)
		case ws.OpClose:
			ce := wsfleet.ParseClose(fr.Payload)
			_ = c.Write(wsfleet.AppendClientFrame(nil, ws.OpClose, fr.Payload[:min(2, len(fr.Payload))]), 100*time.Millisecond)
			return ce
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rest := data[used:]
	switch {
	case len(rest) == 0 && cap(tail) > 4<<10:
		return nil, nil // do not keep a large buffer on an idle connection
	case len(rest) == 0:
		return tail[:0], nil
	}
	return append(tail[:0], rest...), nil // may overlap: copy moves forward
}

// close closes c on its goroutine after an error or the server's close.
func (f *Fleet) close(c *Conn, err error) {
	c.wmu.Lock()
	if c.closed.Swap(true) {
		c.wmu.Unlock()
		return
	}
	_ = c.nc.Close()
	c.wmu.Unlock()
	c.err.Store(&err)
	f.Closed.Add(1)
	f.lastErr.Store(&err)
}

// Stop ends every connection's reader (a read deadline in the past wakes it) and waits
// for them; the connections stay open, and their Seq, Lost and Dup may be read
// afterwards. Frames that arrive later are not read.
func (f *Fleet) Stop() {
	f.stopping.Store(true)
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	for _, c := range conns {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	f.readers.Wait()
}

// CloseAll closes every connection without a closing handshake (the TLS close_notify
// goes out), then waits for the readers.
func (f *Fleet) CloseAll() {
	f.stopping.Store(true)
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.wmu.Lock()
		if !c.closed.Swap(true) {
			_ = c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_ = c.nc.Close()
		}
		c.wmu.Unlock()
	}
	f.readers.Wait()
}

// Dial opens one wss connection to url from source address src (nil: the kernel picks)
// with config, writes first (if not nil) as one masked text frame, and starts reading
// it. The TLS handshake and the upgrade are bounded by ctx.
func (f *Fleet) Dial(ctx context.Context, url string, src net.IP, config *tls.Config, id int, first []byte) (*Conn, error) {
	d := ws.Dialer{
		TLSConfig: config,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{}
			if src != nil {
				nd.LocalAddr = &net.TCPAddr{IP: src}
			}
			return nd.DialContext(ctx, network, addr)
		},
	}
	nc, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, ok := nc.(*tls.Conn); !ok {
		nc.Close()
		return nil, fmt.Errorf("tlsfleet: %s is not wss://", url)
	}
	var leftover []byte
	if br != nil {
		leftover = make([]byte, br.Buffered())
		_, _ = br.Read(leftover)
		ws.PutReader(br)
	}
	c := &Conn{ID: id, nc: nc}
	if first != nil {
		if err := c.Write(wsfleet.AppendClientFrame(nil, ws.OpText, first), 10*time.Second); err != nil {
			nc.Close()
			return nil, err
		}
	}
	_ = nc.SetDeadline(time.Time{})
	f.add(c, leftover)
	return c, nil
}

// DialSpec says how DialMany opens connections.
type DialSpec struct {
	URL         string
	Config      *tls.Config
	From, To    int           // connection indexes [From, To)
	Concurrency int           // dials in flight at once (0: 1)
	Rate        int           // connections per second at most (0: unbounded)
	Sources     []net.IP      // connection i dials from Sources[i%len] (nil: wsfleet.SourceIPs)
	Attempts    int           // tries per connection (0: 3)
	Timeout     time.Duration // per attempt: connect, TLS handshake and upgrade (0: 10 s)
	First       func(i int) []byte
	// Opened, if set, gets each new connection (it may be called concurrently); an error
	// stops DialMany, which returns it.
	Opened func(c *Conn) error
}

// DialMany opens connections From..To-1 at no more than Rate per second, Concurrency at
// a time, and adds them to the fleet. The first connection whose attempts all fail stops
// it and is returned.
func (f *Fleet) DialMany(ctx context.Context, s DialSpec) error {
	if s.Sources == nil {
		s.Sources = wsfleet.SourceIPs
	}
	if s.Attempts <= 0 {
		s.Attempts = 3
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	return wsfleet.Paced(ctx, s.From, s.To, s.Concurrency, s.Rate, func(ctx context.Context, i int) error {
		return f.dialOne(ctx, s, i)
	})
}

func (f *Fleet) dialOne(ctx context.Context, s DialSpec, i int) error {
	var first []byte
	if s.First != nil {
		first = s.First(i)
	}
	var c *Conn
	err := wsfleet.Retry(ctx, s.Attempts, s.Timeout, func(ctx context.Context) (err error) {
		c, err = f.Dial(ctx, s.URL, s.Sources[i%len(s.Sources)], s.Config, i, first)
		return err
	})
	switch {
	case err == nil && s.Opened != nil:
		return s.Opened(c)
	case err == nil, ctx.Err() != nil:
		return nil // ctx.Err: another connection's error is the one reported
	}
	return fmt.Errorf("dial %d: %w", i, err)
}
