package wsfleet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// SourceIPs are the loopback source addresses connections are spread over,
// so that the fleet does not run out of ephemeral ports.
var SourceIPs = func() []net.IP {
	ips := make([]net.IP, 0, 8)
	for i := 2; i <= 9; i++ {
		ips = append(ips, net.IPv4(127, 0, 0, byte(i)))
	}
	return ips
}()

// Dial opens a WebSocket connection to url from source address src, writes
// first (if not nil) as one masked text frame, and detaches the socket from
// the Go runtime. It returns the raw non-blocking fd, which the caller owns,
// and any bytes the server sent right behind the handshake.
func Dial(ctx context.Context, url string, src net.IP, first []byte) (fd int, leftover []byte, err error) {
	d := ws.Dialer{
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
			return nd.DialContext(ctx, network, addr)
		},
	}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return -1, nil, err
	}
	defer conn.Close()
	if br != nil {
		leftover = make([]byte, br.Buffered())
		_, _ = br.Read(leftover)
		ws.PutReader(br)
	}
	if first != nil {
		if _, err := conn.Write(AppendClientFrame(nil, ws.OpText, first)); err != nil {
			return -1, nil, err
		}
	}
	if fd, err = Detach(conn); err != nil {
		return -1, nil, err
	}
	return fd, leftover, nil
}

// Detach returns a dup of conn's socket, which stays non-blocking (and
// TCP_NODELAY: the dup shares the file description). The caller owns the new
// fd and should close conn, which then only drops the Go runtime's
// registration and the original number.
func Detach(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("wsfleet: %T has no SyscallConn", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	syscall.CloseOnExec(fd)
	return fd, nil
}

// AppendClientFrame appends a final, masked frame (as a client must send)
// with opcode op and payload p to dst.
func AppendClientFrame(dst []byte, op ws.OpCode, p []byte) []byte {
	dst = append(dst, 0x80|byte(op))
	switch n := len(p); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, 0x80|127), uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, p...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// errProtocol reports a server frame this client does not accept.
var errProtocol = errors.New("wsfleet: protocol error")

// parseFrames calls fn for every complete frame at the start of b and returns
// how many bytes it consumed. Server frames are unmasked; payloads passed to
// fn are views into b, valid until fn returns.
func parseFrames(b []byte, fn func(fin bool, op ws.OpCode, payload []byte) error) (int, error) {
	used := 0
	for {
		rest := b[used:]
		if len(rest) < 2 {
			return used, nil
		}
		fin := rest[0]&0x80 != 0
		op := ws.OpCode(rest[0] & 0x0f)
		if rest[1]&0x80 != 0 {
			return used, fmt.Errorf("%w: masked server frame", errProtocol)
		}
		hdr, n := 2, uint64(rest[1]&0x7f)
		switch n {
		case 126:
			if len(rest) < 4 {
				return used, nil
			}
			hdr, n = 4, uint64(binary.BigEndian.Uint16(rest[2:]))
		case 127:
			if len(rest) < 10 {
				return used, nil
			}
			hdr, n = 10, binary.BigEndian.Uint64(rest[2:])
			if n > 1<<30 {
				return used, fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
			}
		}
		if uint64(len(rest)-hdr) < n {
			return used, nil
		}
		if err := fn(fin, op, rest[hdr:hdr+int(n)]); err != nil {
			return used, err
		}
		used += hdr + int(n)
	}
}

// WriteAll writes b to the non-blocking fd, waiting briefly whenever the
// socket buffer is full, for at most timeout.
func WriteAll(fd int, b []byte, timeout time.Duration) error {
	var deadline time.Time
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if n > 0 {
			b = b[n:]
			continue
		}
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if deadline.IsZero() {
				deadline = time.Now().Add(timeout)
			} else if time.Now().After(deadline) {
				return fmt.Errorf("wsfleet: write blocked for %v", timeout)
			}
			time.Sleep(50 * time.Microsecond)
			continue
		}
		if err == nil {
			err = syscall.EPIPE
		}
		return err
	}
	return nil
}

// Conn is one fleet connection.
type Conn struct {
	FD  int
	ID  int   // index given by the caller
	Seq int64 // last sequence number seen (used by fanout)
	// Lost, Dup count sequence gaps and repeats (used by fanout).
	Lost, Dup int64

	tail   []byte
	closed atomic.Bool
}

// Closed reports whether the connection was closed (by the server, on an
// error, or by CloseAll).
func (c *Conn) Closed() bool { return c.closed.Load() }

// Handler is called by a loop for each text or binary message of a
// connection. payload is valid until it returns.
type Handler func(c *Conn, payload []byte)

// Loop reads a set of connections through one epoll instance.
type Loop struct {
	epfd    int
	conns   []atomic.Pointer[Conn] // by fd
	handler Handler
	buf     []byte

	// Closed counts connections closed by the server or on errors.
	Closed atomic.Int64
	// LastErr is the last such error, for reporting.
	LastErr atomic.Value
}

// NewLoop makes a loop for fds below maxFD; handler may be nil.
func NewLoop(maxFD int, handler Handler) (*Loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &Loop{epfd: epfd, conns: make([]atomic.Pointer[Conn], maxFD), handler: handler, buf: make([]byte, 64<<10)}, nil
}

// Add starts reading c. leftover are bytes already received for it. It may
// be called concurrently with Run.
func (l *Loop) Add(c *Conn, leftover []byte) error {
	if c.FD >= len(l.conns) {
		return fmt.Errorf("wsfleet: fd %d over limit %d", c.FD, len(l.conns))
	}
	c.tail = append(c.tail[:0], leftover...)
	l.conns[c.FD].Store(c)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.FD)}
	return syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.FD, &ev)
}

// Run reads until stop is set (checked every 50 ms).
func (l *Loop) Run(stop *atomic.Bool) {
	events := make([]syscall.EpollEvent, 512)
	for !stop.Load() {
		n, err := syscall.EpollWait(l.epfd, events, 50)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			l.LastErr.Store(err)
			return
		}
		for i := range events[:n] {
			if c := l.conns[events[i].Fd].Load(); c != nil {
				l.read(c)
			}
		}
	}
}

func (l *Loop) read(c *Conn) {
	n, err := syscall.Read(c.FD, l.buf)
	if n <= 0 {
		if err == syscall.EAGAIN || err == syscall.EINTR {
			return
		}
		if err == nil {
			err = errors.New("wsfleet: closed by server")
		}
		l.fail(c, err)
		return
	}
	data := l.buf[:n]
	if len(c.tail) > 0 {
		c.tail = append(c.tail, data...)
		data = c.tail
	}
	used, err := parseFrames(data, func(fin bool, op ws.OpCode, p []byte) error {
		switch op {
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if l.handler != nil {
				l.handler(c, p)
			}
		case ws.OpPing:
			return WriteAll(c.FD, AppendClientFrame(nil, ws.OpPong, p), time.Second)
		case ws.OpClose:
			_ = WriteAll(c.FD, AppendClientFrame(nil, ws.OpClose, p), 10*time.Millisecond)
			code := 0
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			return fmt.Errorf("wsfleet: close frame from server, code %d %q", code, p[min(2, len(p)):])
		}
		return nil
	})
	if err != nil {
		l.fail(c, err)
		return
	}
	rest := data[used:]
	if len(rest) == 0 {
		c.tail = c.tail[:0]
	} else {
		c.tail = append(c.tail[:0], rest...) // may overlap: copy moves forward
	}
}

func (l *Loop) fail(c *Conn, err error) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	l.conns[c.FD].Store(nil)
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.FD, nil)
	_ = syscall.Close(c.FD)
	l.Closed.Add(1)
	l.LastErr.Store(err)
}

// CloseAll closes every connection of the loop and the loop itself; call it
// after Run has returned.
func (l *Loop) CloseAll() {
	for i := range l.conns {
		if c := l.conns[i].Load(); c != nil && c.closed.CompareAndSwap(false, true) {
			_ = syscall.Close(c.FD)
		}
	}
	_ = syscall.Close(l.epfd)
}
