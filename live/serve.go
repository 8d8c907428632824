package live

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// handshakeTimeout bounds how long a connection accepted by Serve may take to send its
// upgrade request.
const handshakeTimeout = 10 * time.Second

// Serve accepts connections on ln and serves WebSocket upgrades on them itself, without
// net/http's server: each accepted connection has a goroutine only until its handshake is
// done. Requests get the same answers as from Handler (any path is accepted; other
// requests get 400). When accepting fails because the process or the system is out of file
// descriptors (EMFILE, ENFILE) or memory, Serve counts it (Stats.AcceptErrors), logs it
// once per episode and retries with a growing pause (5 ms to 1 s) instead of spinning.
// Serve returns ErrServerClosed after Shutdown or Close (which close ln), or the
// listener's error.
func (srv *Server) Serve(ln net.Listener) error {
	if !srv.track(ln) {
		return ErrServerClosed
	}
	defer srv.untrack(ln)
	// Start the event loop before accepting, so its descriptors are not the ones a burst of
	// connections leaves missing (a failure here is retried at the first upgrade).
	_ = srv.start()
	if tl, ok := ln.(*net.TCPListener); ok {
		if handled, err := srv.serveRaw(tl); handled {
			return err
		}
	}
	var pause time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if stop := srv.acceptFailed(err, &pause); stop != nil {
				return stop
			}
			continue
		}
		pause = 0
		go srv.serveConn(conn)
	}
}

// acceptFailed handles an accept error of Serve's or ServeTLS's loop: it returns the error
// that ends the loop (ErrServerClosed once the server closes, or an error that is not a
// shortage), or counts the shortage, logs it once per episode and sleeps a pause that
// doubles from 5 ms to 1 s (the loop resets pause after a success) and returns nil.
func (srv *Server) acceptFailed(err error, pause *time.Duration) error {
	if srv.closingDown() {
		return ErrServerClosed
	}
	if !isResourceShortage(err) {
		return err
	}
	srv.stats.acceptErrors.Add(1)
	if *pause == 0 {
		*pause = 5 * time.Millisecond
		srv.opts.Logger.Error("live: accept failed; new connections wait until descriptors are freed (raise the limit: ulimit -n, see docs/tuning.md)", "err", err)
	} else if *pause *= 2; *pause > time.Second {
		*pause = time.Second
	}
	time.Sleep(*pause)
	return nil
}

// isResourceShortage reports an accept error that goes away once descriptors or memory
// are freed.
func isResourceShortage(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// track records a listener so Shutdown and Close can close it.
func (srv *Server) track(ln net.Listener) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed {
		return false
	}
	if srv.listeners == nil {
		srv.listeners = make(map[net.Listener]struct{})
	}
	srv.listeners[ln] = struct{}{}
	return true
}

func (srv *Server) untrack(ln net.Listener) {
	srv.mu.Lock()
	delete(srv.listeners, ln)
	srv.mu.Unlock()
}

// maxRequestHead bounds the request line and headers read by Serve, as net/http's
// DefaultMaxHeaderBytes (plus its 4 KiB of slack) does: beyond it the answer is 431.
const maxRequestHead = http.DefaultMaxHeaderBytes + 4<<10

var errBadHeaderName = errors.New("live: invalid header name")

// limitedConn reads at most left bytes from the connection.
type limitedConn struct {
	net.Conn
	left int64
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errors.New("live: request head too large")
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.Conn.Read(p)
	l.left -= int64(n)
	return n, err
}

// validHeaderNames applies RFC 9110's token rule to header names, as net/http's server does.
func validHeaderNames(h http.Header) bool {
	for name := range h {
		if name == "" {
			return false
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
				return false
			}
		}
	}
	return true
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// serveConn reads one HTTP request and answers it through serveHTTP.
func (srv *Server) serveConn(c net.Conn) { srv.serveRequest(c, srv.serveHTTP) }

// serveRequest reads one HTTP request from c and answers it through upgrade (serveHTTP,
// or serveTLSUpgrade for a connection whose handshake ServeTLS ran: c then opens and
// seals records).
func (srv *Server) serveRequest(c net.Conn, upgrade http.HandlerFunc) {
	br := readerPool.Get().(*bufio.Reader)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	head := &limitedConn{Conn: c, left: maxRequestHead}
	br.Reset(head)
	w := &connResponse{conn: c, br: br}
	_ = c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	req, err := http.ReadRequest(br)
	if err == nil && !validHeaderNames(req.Header) {
		err = errBadHeaderName
	}
	switch {
	case err == nil:
		head.left = 1 << 62 // the request is read; what follows is the WebSocket stream
		_ = c.SetReadDeadline(time.Time{})
		req.RemoteAddr = c.RemoteAddr().String()
		upgrade(w, req)
	case head.left <= 0:
		w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
	if !w.hijacked {
		w.writeTo(c)
		closeAfterAnswer(c)
	}
}

// closeAfterAnswer closes a connection that got an error answer the way net/http does:
// shut the write side, read and drop what the client still sends for a moment, then
// close, so the client reads the answer instead of a reset.
func closeAfterAnswer(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 256<<10))
	}
	_ = c.Close()
}

// answerBuffer is what Serve's ResponseWriters share: the answer, buffered (every
// non-101 answer is a short error) until writeTo sends it.
type answerBuffer struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (a *answerBuffer) Header() http.Header {
	if a.header == nil {
		a.header = make(http.Header)
	}
	return a.header
}

func (a *answerBuffer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *answerBuffer) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(p)
}

// writeTo sends the answer on conn, with Connection: close.
func (a *answerBuffer) writeTo(conn net.Conn) {
	a.WriteHeader(http.StatusOK)
	h := a.Header()
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", a.status, http.StatusText(a.status))
	h.Set("Connection", "close")
	h.Set("Content-Length", strconv.Itoa(a.body.Len()))
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(a.body.Bytes())
	_ = conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	_, _ = conn.Write(b.Bytes())
}

// connResponse is the http.ResponseWriter of Serve on a net.Conn: it buffers the answer
// and can hand the connection over.
type connResponse struct {
	conn net.Conn
	br   *bufio.Reader
	answerBuffer
}

// Hijack hands over the connection. The bytes the reader buffered past the request are
// available through the returned reader, as with net/http.
func (w *connResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	return w.conn, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.conn, 64)), nil
}
