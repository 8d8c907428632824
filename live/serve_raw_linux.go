//go:build linux

package live

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/livepoll/livepoll/poller"
	"github.com/livepoll/livepoll/pool"
)

// Serve on a *net.TCPListener accepts on the event loop: it takes each connection's
// descriptor straight from accept4 (never a net.Conn: no runtime poller registration, no
// TCP keepalive options, no duplicate to detach), registers it with the poller at once and
// reads the upgrade request as its bytes arrive, on a pool worker, without a goroutine per
// connection. The session then takes over the same registration (Poller.Replace). Per
// connection that is accept4, setsockopt(TCP_NODELAY), epoll_ctl, read and write, where
// going through net.Conn cost about eighteen system calls (docs/architecture.md).
//
// Anything but a well-formed upgrade request that fits the head limit — a request that
// needs an error answer, an oversized or malformed head — goes the way of other
// listeners: a net.Conn for the descriptor and serveRequest's answers on a goroutine, so
// every answer is the same as before.

// rawHeadRead is how much one read of a pending handshake takes.
const rawHeadRead = 4 << 10

// serveRaw is Serve's accept loop for a TCP listener; handled is false when the
// listener's descriptor cannot be had (the caller then accepts the portable way).
//
// The loop waits in the Go runtime's poller, on a duplicate of the listening descriptor
// made pollable through os.NewFile (a listener's RawConn cannot wait). The duplicate
// keeps the socket listening, so it is closed when the server closes (it is tracked
// beside ln) or, checked once a second, when ln has been closed by its owner.
func (srv *Server) serveRaw(tl *net.TCPListener) (handled bool, err error) {
	srv.engMu.Lock()
	eng := srv.eng
	srv.engMu.Unlock()
	if eng == nil || eng.poll == nil {
		return false, nil
	}
	lrc, err := tl.SyscallConn()
	if err != nil {
		return false, nil
	}
	dup := -1
	if err := lrc.Control(func(fd uintptr) { dup, _ = sysDup(int(fd)) }); err != nil || dup < 0 {
		return false, nil
	}
	f := os.NewFile(uintptr(dup), "listener")
	rc, err := f.SyscallConn()
	if err != nil || f.SetReadDeadline(time.Now().Add(time.Second)) != nil {
		_ = f.Close() // not pollable here: accept the portable way
		return false, nil
	}
	closer := &fileListener{Listener: tl, f: f}
	if !srv.track(closer) {
		_ = f.Close()
		return true, ErrServerClosed
	}
	defer srv.untrack(closer)
	defer f.Close()
	var pause time.Duration
	for {
		var nfd int
		var sa unix.Sockaddr
		var aerr error
		err := rc.Read(func(fd uintptr) bool {
			nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			return aerr != unix.EAGAIN // EAGAIN: wait in the runtime's poller for the next
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Once a second: has ln's owner closed it? Then stop as Accept would have.
			if cerr := lrc.Control(func(uintptr) {}); cerr != nil {
				if srv.closingDown() {
					return true, ErrServerClosed
				}
				return true, &net.OpError{Op: "accept", Net: "tcp", Addr: tl.Addr(), Err: net.ErrClosed}
			}
			_ = f.SetReadDeadline(time.Now().Add(time.Second))
			continue
		}
		if err != nil { // the server closed the duplicate
			if srv.closingDown() {
				return true, ErrServerClosed
			}
			return true, err
		}
		if aerr != nil {
			if aerr == unix.ECONNABORTED || aerr == unix.EINTR {
				continue
			}
			if stop := srv.acceptFailed(os.NewSyscallError("accept4", aerr), &pause); stop != nil {
				return true, stop
			}
			continue
		}
		pause = 0
		_ = unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as net does
		h := &handshake{srv: srv, eng: eng, fd: nfd, remote: sockaddrString(sa)}
		// h is scheduled from the start, so events before Add returns only add bits; the
		// first run reads whatever has arrived (the request, usually).
		h.sig.Raise(hsRead)
		tok, err := eng.poll.Add(nfd, h)
		if err != nil {
			_ = unix.Close(nfd)
			if srv.closingDown() {
				return true, ErrServerClosed
			}
			srv.opts.Logger.Error("live: poller refused a connection", "err", err)
			continue
		}
		h.token = tok
		h.timer = time.AfterFunc(handshakeTimeout, func() { h.raise(hsExpired) })
		if !eng.pool.Submit(h) {
			h.drop()
			return true, ErrServerClosed
		}
	}
}

// fileListener is what Shutdown and Close close for a Serve that accepts on the event
// loop: the pollable duplicate of the listening descriptor (ln itself is tracked too).
type fileListener struct {
	net.Listener
	f *os.File
}

func (l *fileListener) Close() error { return l.f.Close() }

// sockaddrString formats a peer address as net.Addr.String would.
func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	}
	return ""
}

// A handshake is a connection accepted by serveRaw until its upgrade request is read: the
// poller's Handler for its descriptor meanwhile, and a pool task that reads.
type handshake struct {
	srv    *Server
	eng    *engine
	fd     int
	remote string
	token  poller.Token
	sig    pool.Signal
	timer  *time.Timer
	head   []byte // what has arrived of the request; nil until a read stops short of it
	// done: handed on or closed. Set once (finish), by Run, or by raise's drop once the
	// pool is closed (h is idle then); after it nothing may touch fd or token, which
	// may belong to a session.
	done atomic.Bool
}

// handshake work bits.
const (
	hsRead    = 1 << iota // the socket may have bytes
	hsExpired             // handshakeTimeout passed
)

// Ready runs on the poller's goroutine.
func (h *handshake) Ready(ev poller.Event) {
	if ev&(poller.Readable|poller.Hangup) != 0 {
		h.raise(hsRead)
	}
}

func (h *handshake) raise(bits uint32) {
	if h.sig.Raise(bits) && !h.eng.pool.Submit(h) {
		// The pool is closed (the server is): nothing runs h any more, and nothing else
		// touches it, since it was idle. Not on this goroutine: Ready runs on the poller's,
		// where Remove would wait for itself.
		go h.drop()
	}
}

// Run reads what has arrived of the request and, once the head is complete, hands the
// connection on.
func (h *handshake) Run() {
	for {
		work := h.sig.Take()
		if !h.done.Load() {
			switch {
			case work&hsExpired != 0:
				h.expire()
			case work&hsRead != 0:
				h.read()
			}
		}
		if h.sig.Done() {
			return
		}
	}
}

// read reads until the socket is empty, the head is complete or too large, or the client
// has gone.
func (h *handshake) read() {
	bp := pool.Get(rawHeadRead)
	defer pool.Put(bp)
	buf := *bp
	for {
		n, err := unix.Read(h.fd, buf)
		switch {
		case n > 0:
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
			continue
		default: // EOF or an error before the request was whole
			h.drop()
			return
		}
		data := buf[:n]
		if h.head != nil {
			h.head = append(h.head, data...)
			data = h.head
		}
		if end := headEnd(data); end >= 0 {
			h.complete(data, end)
			return
		}
		if len(data) > maxRequestHead {
			h.portable(data) // answers 431
			return
		}
		if h.head == nil {
			h.head = append([]byte(nil), data...)
		}
		if n < len(buf) {
			return // a short read took everything; the next bytes raise a new edge
		}
	}
}

// headEnd returns where a request head ends in data (after its blank line, which
// net/textproto ends with "\r\n" or a bare "\n"), or -1.
func headEnd(data []byte) int {
	end := -1
	if i := bytes.Index(data, []byte("\n\r\n")); i >= 0 {
		end = i + 3
	}
	if i := bytes.Index(data, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	return end
}

// complete parses a whole request head (data[:end]; anything after it is the client's
// first frames) and upgrades it, or hands it to the portable path for an error answer.
func (h *handshake) complete(data []byte, end int) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(bytes.NewReader(data[:end]))
	req, err := http.ReadRequest(br)
	br.Reset(nil)
	readerPool.Put(br)
	if err != nil || !validHeaderNames(req.Header) || !isUpgradeRequest(req) {
		h.portable(data) // serveRequest gives the same answer as to any listener
		return
	}
	if !h.finish() {
		return
	}
	req.RemoteAddr = h.remote
	w := &rawResponse{h: h, rest: data[end:]}
	h.eng.pool.Block() // OnAuth may block (a database call, say): the pool may grow meanwhile
	h.srv.upgrade(w, req, h.srv.plainSession)
	h.eng.pool.Unblock()
	if !w.hijacked {
		w.answer()
	}
}

// expire answers 400 to a request not complete after handshakeTimeout, as serveRequest
// does when its read deadline passes.
func (h *handshake) expire() {
	if !h.finish() {
		return
	}
	w := &rawResponse{h: h}
	w.WriteHeader(http.StatusBadRequest)
	w.answer()
}

// finish ends the handshake once: it reports false if it had ended already (a late
// timer's drop must not touch a descriptor a session owns by then).
func (h *handshake) finish() bool {
	if !h.done.CompareAndSwap(false, true) {
		return false
	}
	h.timer.Stop()
	h.head = nil
	return true
}

// drop closes a connection whose client left before its request was complete.
func (h *handshake) drop() {
	if !h.finish() {
		return
	}
	_ = h.eng.poll.Remove(h.token)
	_ = unix.Close(h.fd)
}

// portable takes the descriptor out of the poller and serves the request (data: what has
// arrived of it) as Serve does on other listeners, on a goroutine of its own.
func (h *handshake) portable(data []byte) {
	if !h.finish() {
		return
	}
	c, err := h.toConn()
	if err != nil {
		return
	}
	pre := append([]byte(nil), data...)
	go h.srv.serveConn(&prefixConn{Conn: c, pre: pre})
}

// toConn takes a finished handshake's descriptor out of the poller and makes a net.Conn
// of it, for the portable path (the descriptor is closed on failure too).
func (h *handshake) toConn() (net.Conn, error) {
	_ = h.eng.poll.Remove(h.token)
	f := os.NewFile(uintptr(h.fd), "")
	c, err := net.FileConn(f) // a duplicate: f's own descriptor is closed next
	_ = f.Close()
	return c, err
}

// prefixConn reads pre before the connection's own bytes.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// rawResponse is the http.ResponseWriter of a handshake read on the event loop: Hijack
// hands over the descriptor (rawConn); any other answer is buffered and sent the
// portable way, on a goroutine (answer).
type rawResponse struct {
	h    *handshake
	rest []byte // bytes after the request head
	answerBuffer
}

// Hijack hands over the registered descriptor; the bytes after the request are buffered
// in the returned reader, as net/http's are.
func (w *rawResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	r := bufio.NewReaderSize(bytes.NewReader(w.rest), max(16, len(w.rest)))
	_, _ = r.Peek(len(w.rest))
	c := &rawConn{fd: w.h.fd, token: w.h.token, poll: w.h.eng.poll}
	return c, bufio.NewReadWriter(r, bufio.NewWriterSize(c, 16)), nil
}

// answer sends a non-101 answer the portable way: the descriptor becomes a net.Conn, and
// the answer is written and the connection closed as net/http does.
func (w *rawResponse) answer() {
	c, err := w.h.toConn()
	if err != nil {
		return
	}
	go func() {
		w.writeTo(c)
		closeAfterAnswer(c)
	}()
}

// rawConn is a hijacked handshake's descriptor, still registered with the poller under
// token: plainSession writes the 101 through it and the session takes the registration
// over (Poller.Replace). Only Write and Close are used.
type rawConn struct {
	fd    int
	token poller.Token
	poll  *poller.Poller
}

// takeRaw returns the descriptor and registration of a connection hijacked from a
// handshake read on the event loop.
func takeRaw(conn net.Conn) (fd int, tok poller.Token, ok bool) {
	if rc, ok := conn.(*rawConn); ok {
		return rc.fd, rc.token, true
	}
	return -1, 0, false
}

var errRawConn = errors.New("live: not supported on a descriptor taken from the event loop")

// Write writes all of p; the socket is non-blocking, so a full buffer (which a fresh
// connection's 101 never meets) waits for room with poll(2), up to handshakeTimeout.
func (c *rawConn) Write(p []byte) (int, error) {
	written := 0
	deadline := time.Now().Add(handshakeTimeout)
	for written < len(p) {
		n, err := unix.Write(c.fd, p[written:])
		if n > 0 {
			written += n
		}
		switch {
		case err == nil || err == unix.EINTR:
		case err == unix.EAGAIN:
			wait := time.Until(deadline)
			if wait <= 0 {
				return written, os.ErrDeadlineExceeded
			}
			pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(pfd, int(wait.Milliseconds())+1)
		default:
			return written, os.NewSyscallError("write", err)
		}
	}
	return written, nil
}

// Close unregisters and closes the descriptor (a failed upgrade).
func (c *rawConn) Close() error {
	_ = c.poll.Remove(c.token)
	return unix.Close(c.fd)
}

func (c *rawConn) Read([]byte) (int, error)         { return 0, errRawConn }
func (c *rawConn) LocalAddr() net.Addr              { return nil }
func (c *rawConn) RemoteAddr() net.Addr             { return nil }
func (c *rawConn) SetDeadline(time.Time) error      { return errRawConn }
func (c *rawConn) SetReadDeadline(time.Time) error  { return errRawConn }
func (c *rawConn) SetWriteDeadline(time.Time) error { return errRawConn }
