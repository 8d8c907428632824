package live

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/poller"
	"github.com/livepoll/livepoll/pool"
)

// admission is an upgrade request that passed every check, with its place reserved.
type admission struct {
	value any    // what OnAuth returned
	key   string // Sec-WebSocket-Key
	ext   string // the Sec-WebSocket-Extensions answer, if any
	zbits uint8  // the compression negotiated (Session.zbits)
}

// admit checks an upgrade request in mizu's order (upgrade, version, origin, OnAuth, key),
// with the upgrade rate cap before OnAuth, starts the event loop, reserves a place and
// negotiates compression. When it reports false it has answered the request; when true the
// caller owns the reservation (unreserve, unless add takes it over). Handler and ServeTLS
// answer alike because both go through it.
func (srv *Server) admit(w http.ResponseWriter, r *http.Request) (a admission, ok bool) {
	if r.Method != http.MethodGet || !isUpgradeRequest(r) {
		http.Error(w, "websocket upgrade required", http.StatusBadRequest)
		return a, false
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "unsupported WebSocket version", http.StatusUpgradeRequired)
		return a, false
	}
	if !srv.originAllowed(r) {
		http.Error(w, "forbidden origin", http.StatusForbidden)
		return a, false
	}
	// The cap comes before OnAuth, which may be the costly part of an upgrade.
	if !srv.admitUpgrade(w) {
		return a, false
	}
	if srv.opts.OnAuth != nil {
		v, err := srv.opts.OnAuth(r.Context(), r)
		if err != nil {
			http.Error(w, "authentication failed", http.StatusUnauthorized)
			return a, false
		}
		a.value = v
	}
	a.key = r.Header.Get("Sec-WebSocket-Key")
	if !validKey(a.key) {
		http.Error(w, "invalid Sec-WebSocket-Key", http.StatusBadRequest)
		return a, false
	}
	if err := srv.start(); err != nil {
		if errors.Is(err, ErrServerClosed) {
			srv.stats.rejected.Add(1)
			http.Error(w, "server closing", http.StatusServiceUnavailable)
			return a, false
		}
		http.Error(w, "websocket: event loop unavailable: "+err.Error(), http.StatusInternalServerError)
		return a, false
	}
	if ok, why := srv.reserve(); !ok {
		srv.stats.rejected.Add(1)
		http.Error(w, why, http.StatusServiceUnavailable)
		return a, false
	}
	// The echo engine (cmd/echo, conformance) negotiates whenever offered; cmd/echo
	// hides the offers when compression is turned off.
	if srv.opts.Compression || srv.echo {
		a.ext, a.zbits = negotiateDeflate(r.Header.Values("Sec-WebSocket-Extensions"))
	}
	return a, true
}

// serveHTTP admits the request, hijacks the connection, answers 101 and hands the
// connection to the event loop, then returns: no goroutine stays behind for it.
func (srv *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	srv.upgrade(w, r, srv.plainSession)
}

// upgrade is what every upgrade shares: admit, hijack, then session makes the session
// (it answers 101; nil: it failed and closed the connection) and launch takes over the
// admission, which is released on every other way out.
func (srv *Server) upgrade(w http.ResponseWriter, r *http.Request,
	session func(r *http.Request, a admission, conn net.Conn, brw *bufio.ReadWriter) *Session) {
	a, ok := srv.admit(w, r)
	if !ok {
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		srv.unreserve()
		http.Error(w, "websocket: hijack not supported", http.StatusInternalServerError)
		return
	}
	s := session(r, a, conn, brw)
	if s == nil {
		srv.unreserve()
		return
	}
	srv.launch(s) // add takes over the admission
}

// plainSession answers 101 on a connection net/http or Serve hijacked and makes its
// session: on the event loop when its descriptor can be taken, on the portable path
// otherwise (a *tls.Conn under an https server, or no poller on this platform).
func (srv *Server) plainSession(r *http.Request, a admission, conn net.Conn, brw *bufio.ReadWriter) *Session {
	// A client may send its first frame right behind the handshake; whatever net/http
	// already buffered is copied out, and nothing of its reader or writer is kept.
	var pre *[]byte
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		pre = pool.Get(n)
		copy(*pre, p)
	}

	if _, err := conn.Write(acceptResponse(a.key, a.ext)); err != nil {
		_ = conn.Close()
		return nil
	}
	fd, polled := -1, false
	var taken poller.Token // the registration of a handshake read on the event loop
	if rfd, tok, ok := takeRaw(conn); ok {
		fd, polled, taken, conn = rfd, true, tok, nil
	} else if srv.eng.poll != nil {
		var keep bool
		if fd, keep, polled = detachFD(conn); polled && !keep {
			conn = nil // the session owns fd
		}
	}
	s := &Session{
		id:      srv.opts.IDGenerator(),
		value:   a.value,
		srv:     srv,
		conn:    conn,
		fd:      int32(fd),
		fdOpen:  true,
		zbits:   a.zbits,
		pending: pre,
		base:    r.Context(),
	}
	if !polled {
		// TLS and other wrapped connections (or no poller on this platform): the
		// portable path, a reader and a writer goroutine. The session is complete before
		// anything else can see it.
		s.fd = -1
		s.blk = newBlockingIO()
		return s
	}
	if taken != 0 {
		// The descriptor is registered already: the session takes its events over.
		if err := srv.eng.poll.Replace(taken, (*pollHandler)(s)); err != nil {
			s.closeSocket()
			return nil
		}
		s.token, s.registered = taken, true
	} else if !srv.register(s) {
		return nil
	}
	return s
}

// register adds the session's descriptor to the poller before the session is visible, so
// a Close racing the upgrade finds it registered (finish removes it) and never a
// descriptor it has already closed; events before ready is set are ignored, and launch's
// first read catches up. If the poller refuses, the session's socket (and record layer)
// is released and register reports false.
func (srv *Server) register(s *Session) bool {
	token, err := srv.eng.poll.Add(int(s.fd), (*pollHandler)(s))
	if err != nil {
		srv.opts.Logger.Error("live: poller refused a connection", "err", err)
		if s.tls != nil {
			s.tls.Release()
		}
		s.closeSocket()
		return false
	}
	s.token, s.registered = token, true
	return true
}

// launch makes an upgraded, registered session visible and starts it. When the server
// closed after the client's 101 went out, the client is upgraded and is owed a close
// frame, not a bare EOF: a best-effort write, nothing waits for its reply.
func (srv *Server) launch(s *Session) {
	if hook := testHookBeforeAdd.Load(); hook != nil {
		(*hook)()
	}
	if !srv.add(s) {
		if s.registered {
			_ = srv.eng.poll.Remove(s.token)
		}
		s.wmu.Lock()
		s.sendCloseNow(ws.StatusCode(srv.opts.ShutdownCode), "server shutting down")
		s.wmu.Unlock()
		if s.tls != nil {
			s.tls.Release()
		}
		s.closeSocket()
		return
	}
	srv.keepalive(s)
	if s.blk != nil {
		s.startBlocking()
		return
	}
	s.flags.Or(flagReady)
	// Events that came before ready were ignored: read once now. Edge-triggered
	// readiness resumes after the first read that returns EAGAIN.
	s.raise(workRead | workDrain)
}

// testHookBeforeAdd, if set (tests only), runs between the 101 response and add.
var testHookBeforeAdd atomic.Pointer[func()]

// keepalive starts the keepalive checks of a new session.
func (srv *Server) keepalive(s *Session) {
	s.lastRead.Store(time.Now().UnixNano())
	if srv.opts.PingInterval > 0 || srv.opts.IdleTimeout > 0 {
		srv.keep.schedule(s, time.Now().Unix()+1)
	}
}

// detachFD takes the connection's socket out of the Go runtime: it duplicates the
// descriptor (the copy shares the non-blocking open file description) and closes conn,
// which drops the runtime poller's registration and the net.Conn's memory (netFD, pollDesc,
// addresses: about 0.5 KB per connection). If the duplicate cannot be made (EMFILE), it
// returns conn's own descriptor and keep is set: conn must stay open, and owns it.
func detachFD(conn net.Conn) (fd int, keep, ok bool) {
	fd, ok = rawFD(conn)
	if !ok {
		return -1, false, false
	}
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		// A wrapper (a listener's own type embedding *net.TCPConn, say) may do work in its
		// Close — release a connection slot, count — that must happen when the session
		// ends, not now: keep it.
		return fd, true, true
	}
	dup, err := sysDup(fd)
	if err != nil {
		return fd, true, true
	}
	_ = conn.Close()
	return dup, false, true
}

// rawFD returns the connection's descriptor without duplicating it (File would dup it and
// switch it to blocking mode).
func rawFD(conn net.Conn) (int, bool) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}

func isUpgradeRequest(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		headerHasToken(r.Header.Values("Connection"), "upgrade")
}

// headerHasToken reports whether a comma-separated header holds token (any case).
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func validKey(key string) bool {
	if key == "" {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptResponse is the 101 answer, with the Sec-WebSocket-Extensions answer ext if it is
// not empty.
func acceptResponse(key, ext string) []byte {
	sum := sha1.Sum([]byte(key + acceptGUID))
	b := make([]byte, 0, 129+len(ext))
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	if ext != "" {
		b = append(b, "\r\nSec-WebSocket-Extensions: "...)
		b = append(b, ext...)
	}
	return append(b, "\r\n\r\n"...)
}

// originAllowed applies CheckOrigin, else Origins, else the same-origin default.
func (srv *Server) originAllowed(r *http.Request) bool {
	if srv.opts.CheckOrigin != nil {
		return srv.opts.CheckOrigin(r)
	}
	origin := r.Header.Get("Origin")
	if len(srv.opts.Origins) > 0 {
		for _, o := range srv.opts.Origins {
			if o == "*" || o == origin {
				return true
			}
		}
		return false
	}
	if origin == "" {
		return true // not a browser: nothing to protect against
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
