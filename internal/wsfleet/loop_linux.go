package wsfleet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/livepoll/livepoll/internal/uring"
)

// ErrCloseTimeout closes a connection whose server did not answer this side's close
// frame within Loop.CloseTimeout.
var ErrCloseTimeout = errors.New("wsfleet: no close frame from the server in time")

// errEOF is a server that closed the TCP connection without a close frame.
var errEOF = fmt.Errorf("wsfleet: connection closed by server without a close frame: %w", io.EOF)

// Handler is called by a loop, on its goroutine, for each text or binary frame of a
// connection. payload is valid until it returns. It must not block for long: every
// connection of the loop waits meanwhile.
type Handler func(c *Conn, payload []byte)

// FrameHandler is a Handler that also sees the frame's header bits (RSV1: compressed).
// The same rules apply; f.Payload is valid until it returns.
type FrameHandler func(c *Conn, f Frame)

// Loop reads a set of connections through one epoll instance, on the goroutine that
// calls Run. It answers pings, answers the server's close frame and finishes closing
// handshakes this side started. Add, Shutdown, Kill, Do, Post and Stop are safe for
// concurrent use.
type Loop struct {
	// OnClose, if set, is called on the loop goroutine after a connection's descriptor
	// is closed: err is nil when this side started the closing handshake (Shutdown) and
	// it completed, and otherwise the reason (a *CloseError for the server's close frame,
	// a syscall.Errno, ErrProtocol, ErrCloseTimeout, ...). Set it before Run.
	OnClose func(c *Conn, err error)
	// CloseTimeout bounds a closing handshake this side started (default 2 s).
	CloseTimeout time.Duration

	// Closed counts connections closed by the server or on errors (not those that
	// finished a closing handshake this side started).
	Closed atomic.Int64
	// Batched counts receives done in batches through io_uring (the rest were read(2)).
	Batched atomic.Int64

	epfd, wakefd int
	conns        []atomic.Pointer[Conn] // by fd
	handler      FrameHandler
	buf          []byte
	stop         atomic.Bool
	lastErr      atomic.Pointer[error]

	mu    sync.Mutex
	tasks []func()
	done  bool // Run has returned; guarded by mu

	closing []closingConn // loop goroutine only, in deadline order

	// Batched reads (readBatch), loop goroutine only; ring is nil where io_uring is
	// missing or WSFLEET_URING=0.
	ring  *uring.Ring
	slab  []byte  // batchMax slots of batchSlot bytes
	res   []int32 // results by slot
	batch []*Conn // the connection of each slot
}

// A loop reads the sockets one epoll_wait found ready with one io_uring_enter, a receive
// per socket, instead of one read(2) each: on a machine where a system call crossing costs
// ~3 µs that is most of what a client spends per small message, and it is CPU the server
// under test then has. A socket with more than batchSlot bytes keeps the rest for the next
// round (epoll is level-triggered).
const (
	batchMax  = 256
	batchSlot = 16 << 10
)

// useRing: loops batch their reads through io_uring where they can; WSFLEET_URING=0 makes
// them read each socket with read(2) (for A/B runs).
var useRing = os.Getenv("WSFLEET_URING") != "0"

// openRing returns a ring for batched reads, or nil (read(2) then) when io_uring is off,
// missing, forbidden or would wait on an empty socket.
func openRing() *uring.Ring {
	if !useRing {
		return nil
	}
	r, err := uring.New(batchMax)
	if err != nil {
		return nil
	}
	if err := r.CheckRecvNowait(); err != nil {
		r.Close()
		return nil
	}
	return r
}

type closingConn struct {
	c        *Conn
	deadline time.Time
}

// NewLoop makes a loop for descriptors below maxFD; handler may be nil.
func NewLoop(maxFD int, handler Handler) (*Loop, error) {
	var fh FrameHandler
	if handler != nil {
		fh = func(c *Conn, f Frame) { handler(c, f.Payload) }
	}
	return NewFrameLoop(maxFD, fh)
}

// NewFrameLoop is NewLoop with a handler that sees each frame's header bits.
func NewFrameLoop(maxFD int, handler FrameHandler) (*Loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wakefd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(wakefd)
		return nil, err
	}
	return &Loop{
		CloseTimeout: 2 * time.Second,
		epfd:         epfd,
		wakefd:       wakefd,
		conns:        make([]atomic.Pointer[Conn], maxFD),
		handler:      handler,
		buf:          make([]byte, 64<<10),
	}, nil
}

// LastErr is the last error that closed a connection (or stopped Run), for reporting.
func (l *Loop) LastErr() error {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Add starts reading c. leftover are bytes already received for it (they are parsed on
// the loop goroutine soon after). The loop owns c.FD from now on, even if Add fails.
func (l *Loop) Add(c *Conn, leftover []byte) error {
	if c.FD < 0 || c.FD >= len(l.conns) {
		syscall.Close(c.FD)
		c.closed.Store(true)
		return fmt.Errorf("wsfleet: fd %d over limit %d", c.FD, len(l.conns))
	}
	c.tail = append(c.tail[:0], leftover...)
	c.mu.Lock()
	c.open = true
	c.mu.Unlock()
	l.conns[c.FD].Store(c)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.FD)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.FD, &ev); err != nil {
		l.conns[c.FD].CompareAndSwap(c, nil)
		c.mu.Lock()
		c.open = false
		syscall.Close(c.FD)
		c.mu.Unlock()
		c.closed.Store(true)
		return err
	}
	if len(leftover) > 0 {
		l.Post(func() { l.consume(c, nil) })
	}
	return nil
}

// Run reads until Stop. Tasks posted with Do and Post run between reads.
func (l *Loop) Run() {
	events := make([]syscall.EpollEvent, 512)
	if l.ring = openRing(); l.ring != nil {
		defer func() { l.ring.Close(); l.ring, l.slab = nil, nil }()
		l.slab = make([]byte, batchMax*batchSlot)
		l.res = make([]int32, batchMax)
		l.batch = make([]*Conn, 0, batchMax)
	}
	for !l.stop.Load() {
		timeout := -1
		if len(l.closing) > 0 {
			timeout = max(1, int(time.Until(l.closing[0].deadline).Milliseconds())+1)
		}
		n, err := syscall.EpollWait(l.epfd, events, timeout)
		if err != nil && err != syscall.EINTR {
			l.setErr(err)
			break
		}
		for i := range events[:max(n, 0)] {
			fd := int(events[i].Fd)
			if fd == l.wakefd {
				var b [8]byte
				_, _ = syscall.Read(l.wakefd, b[:])
				continue
			}
			c := l.conns[fd].Load()
			switch {
			case c == nil:
			case l.ring == nil || n == 1:
				l.read(c)
			default:
				l.batch = append(l.batch, c)
				if len(l.batch) == batchMax {
					l.readBatch()
				}
			}
		}
		l.readBatch()
		l.runTasks()
		l.sweepClosing()
	}
	l.mu.Lock()
	l.done = true
	tasks := l.tasks
	l.tasks = nil
	l.mu.Unlock()
	for _, fn := range tasks {
		fn()
	}
}

// Stop makes Run return soon. Connections stay open (CloseAll closes them).
func (l *Loop) Stop() {
	l.stop.Store(true)
	l.wake()
}

// Post runs fn on the loop goroutine soon, without waiting for it; once Run has
// returned, fn runs at once on the caller's goroutine. Posted before Run starts, fn
// runs when it starts.
func (l *Loop) Post(fn func()) {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		fn()
		return
	}
	l.tasks = append(l.tasks, fn)
	wake := len(l.tasks) == 1
	l.mu.Unlock()
	if wake {
		l.wake()
	}
}

// Do runs fn on the loop goroutine (see Post) and waits for it to finish. fn may touch
// the loop's connections' Seq, Lost, Dup. It must not call Do.
func (l *Loop) Do(fn func()) {
	done := make(chan struct{})
	l.Post(func() {
		defer close(done)
		fn()
	})
	<-done
}

func (l *Loop) runTasks() {
	l.mu.Lock()
	tasks := l.tasks
	l.tasks = nil
	l.mu.Unlock()
	for _, fn := range tasks {
		fn()
	}
}

func (l *Loop) wake() {
	var one = [8]byte{1}
	_, _ = syscall.Write(l.wakefd, one[:]) // EAGAIN only when the counter is already huge
}

// Shutdown starts the closing handshake of c: it sends a close frame (1000) and lets the
// loop close the descriptor when the server answers, or after CloseTimeout.
func (l *Loop) Shutdown(c *Conn) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	frame := AppendClientFrame(nil, ws.OpClose, []byte{0x03, 0xe8}) // 1000
	if err := c.Write(frame, 100*time.Millisecond); err != nil {
		l.Kill(c, err)
		return
	}
	l.Post(func() {
		if !c.Closed() {
			l.closing = append(l.closing, closingConn{c, time.Now().Add(l.CloseTimeout)})
		}
	})
}

// Kill closes c's descriptor on the loop goroutine soon, without a closing handshake;
// OnClose gets err.
func (l *Loop) Kill(c *Conn, err error) {
	l.Post(func() { l.close(c, err) })
}

func (l *Loop) sweepClosing() {
	now := time.Now()
	i := 0
	for ; i < len(l.closing); i++ {
		cc := l.closing[i]
		if cc.c.Closed() {
			continue
		}
		if now.Before(cc.deadline) {
			break
		}
		l.close(cc.c, ErrCloseTimeout)
	}
	if i > 0 {
		n := copy(l.closing, l.closing[i:])
		clear(l.closing[n:])
		l.closing = l.closing[:n]
	}
}

func (l *Loop) read(c *Conn) {
	n, err := syscall.Read(c.FD, l.buf)
	if n <= 0 {
		var errno syscall.Errno // 0: the end of the stream
		if err != nil && !errors.As(err, &errno) {
			errno = syscall.EIO
		}
		l.readDone(c, errno)
		return
	}
	c.BytesIn.Add(int64(n))
	l.consume(c, l.buf[:n])
}

// readDone handles a read of c that returned no data: errno 0 is the end of the stream.
func (l *Loop) readDone(c *Conn, errno syscall.Errno) {
	switch {
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
	case errno == 0 && c.Closing():
		l.close(c, nil) // the server closed after our close frame: done
	case errno == 0:
		l.close(c, errEOF)
	default:
		l.close(c, errno)
	}
}

// readBatch receives from every connection in l.batch with one io_uring_enter and
// consumes what each got, as read does for one.
func (l *Loop) readBatch() {
	if len(l.batch) == 0 {
		return
	}
	for i, c := range l.batch {
		l.ring.PrepareRecv(c.FD, l.slab[i*batchSlot:(i+1)*batchSlot])
	}
	if err := l.ring.Submit(l.res); err != nil {
		// The ring failed: what it did not take is read the plain way, now and from
		// then on.
		l.ring.Close()
		l.ring = nil
	}
	l.Batched.Add(int64(len(l.batch)))
	for i, c := range l.batch {
		n := l.res[i]
		switch {
		case n == uring.NotSent:
			l.read(c)
		case n > 0:
			c.BytesIn.Add(int64(n))
			l.consume(c, l.slab[i*batchSlot:i*batchSlot+int(n)])
		default:
			l.readDone(c, syscall.Errno(-n))
		}
	}
	clear(l.batch)
	l.batch = l.batch[:0]
}

// consume parses data after c's unparsed tail.
func (l *Loop) consume(c *Conn, data []byte) {
	if c.Closed() {
		return
	}
	if len(c.tail) > 0 {
		c.tail = append(c.tail, data...)
		data = c.tail
	}
	var closeErr error
	closed := false
	used, err := ParseFrames(data, maxFrame, func(f Frame) error {
		p := f.Payload
		switch f.Op {
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if l.handler != nil {
				l.handler(c, f)
			}
		case ws.OpPing:
			return c.Write(AppendClientFrame(nil, ws.OpPong, p), time.Second)
		case ws.OpClose:
			closed = true
			if c.Closing() {
				return io.EOF // the answer to ours
			}
			ce := ParseClose(p)
			_ = c.Write(AppendClientFrame(nil, ws.OpClose, p[:min(2, len(p))]), 10*time.Millisecond)
			closeErr = ce
			return ce
		}
		return nil
	})
	switch {
	case closed:
		l.close(c, closeErr)
		return
	case err != nil:
		l.close(c, err)
		return
	}
	rest := data[used:]
	switch {
	case len(rest) == 0 && cap(c.tail) > 4<<10:
		c.tail = nil // do not keep a large buffer on an idle connection
	case len(rest) == 0:
		c.tail = c.tail[:0]
	default:
		c.tail = append(c.tail[:0], rest...) // may overlap: copy moves forward
	}
}

// close closes c's descriptor (loop goroutine, or after Run returned).
func (l *Loop) close(c *Conn, err error) {
	c.mu.Lock()
	if !c.open {
		c.mu.Unlock()
		return
	}
	c.open = false
	l.conns[c.FD].CompareAndSwap(c, nil)
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.FD, nil)
	_ = syscall.Close(c.FD)
	c.mu.Unlock()
	if err != nil {
		c.err.Store(&err)
	}
	c.closed.Store(true)
	c.tail = nil
	if err != nil {
		l.Closed.Add(1)
		l.setErr(err)
	}
	if l.OnClose != nil {
		l.OnClose(c, err)
	}
}

func (l *Loop) setErr(err error) { l.lastErr.Store(&err) }

// CloseAll closes every connection of the loop, without closing handshakes and without
// calling OnClose, and then the loop itself. Call it after Run has returned.
func (l *Loop) CloseAll() {
	for i := range l.conns {
		if c := l.conns[i].Load(); c != nil {
			c.mu.Lock()
			if c.open {
				c.open = false
				_ = syscall.Close(c.FD)
			}
			c.mu.Unlock()
			c.closed.Store(true)
			l.conns[i].Store(nil)
		}
	}
	_ = syscall.Close(l.epfd)
	_ = syscall.Close(l.wakefd)
}
