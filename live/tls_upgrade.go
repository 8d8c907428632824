package live

import (
	"errors"
	"net/http"

	"github.com/gobwas/ws"
)

// serveTLSUpgrade is serveHTTP for a connection ServeTLS has handshaken (w hijacks a
// *tlsConn): the same checks in the same order and the same answers, sealed; then the
// session is made with the connection's record layer. Keep the two in step: serveHTTP
// (upgrade.go) hands a *tls.Conn to the portable path and must stay that portable.
func (srv *Server) serveTLSUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !isUpgradeRequest(r) {
		http.Error(w, "websocket upgrade required", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "unsupported WebSocket version", http.StatusUpgradeRequired)
		return
	}
	if !srv.originAllowed(r) {
		http.Error(w, "forbidden origin", http.StatusForbidden)
		return
	}
	if !srv.admitUpgrade(w) {
		return
	}
	var value any
	if srv.opts.OnAuth != nil {
		v, err := srv.opts.OnAuth(r.Context(), r)
		if err != nil {
			http.Error(w, "authentication failed", http.StatusUnauthorized)
			return
		}
		value = v
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if !validKey(key) {
		http.Error(w, "invalid Sec-WebSocket-Key", http.StatusBadRequest)
		return
	}
	if err := srv.start(); err != nil {
		if errors.Is(err, ErrServerClosed) {
			srv.stats.rejected.Add(1)
			http.Error(w, "server closing", http.StatusServiceUnavailable)
			return
		}
		http.Error(w, "websocket: event loop unavailable: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if ok, why := srv.reserve(); !ok {
		srv.stats.rejected.Add(1)
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	upgraded := false
	defer func() {
		if !upgraded {
			srv.unreserve()
		}
	}()

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "websocket: hijack not supported", http.StatusInternalServerError)
		return
	}
	tc := conn.(*tlsConn)
	pre := tc.takeBuffered(brw.Reader)
	brw = nil
	var ext string
	var zbits uint8
	if srv.opts.Compression || srv.echo {
		ext, zbits = negotiateDeflate(r.Header.Values("Sec-WebSocket-Extensions"))
	}
	if _, err := tc.Write(acceptResponse(key, ext)); err != nil {
		_ = tc.Close()
		return
	}
	s := &Session{
		id:      srv.opts.IDGenerator(),
		value:   value,
		srv:     srv,
		fd:      -1,
		fdOpen:  true,
		zbits:   zbits,
		pending: pre,
		base:    r.Context(),
	}
	if srv.eng.poll == nil {
		// No poller on this platform: the portable path's goroutines read and write
		// through tc, which opens and seals.
		s.conn, s.blk = tc, newBlockingIO()
	} else {
		fd, keep, ok := detachFD(tc.Conn)
		if !ok {
			srv.opts.Logger.Error("live: no descriptor for a TLS connection")
			_ = tc.Close()
			return
		}
		if keep {
			s.conn = tc.Conn // owns fd
		}
		s.fd, s.tls = int32(fd), tc.rec
		token, err := srv.eng.poll.Add(fd, (*pollHandler)(s))
		if err != nil {
			srv.opts.Logger.Error("live: poller refused a connection", "err", err)
			s.tls.Release()
			s.closeSocket()
			return
		}
		s.token, s.registered = token, true
	}

	upgraded = true // add takes over the admission
	if !srv.add(s) {
		// The server closed after the 101 went out: the client is owed a close frame.
		if s.registered {
			_ = srv.eng.poll.Remove(s.token)
		}
		if s.blk != nil {
			s.sendCloseNow(ws.StatusCode(srv.opts.ShutdownCode), "server shutting down")
		} else {
			s.wmu.Lock()
			s.sendCloseNow(ws.StatusCode(srv.opts.ShutdownCode), "server shutting down")
			s.wmu.Unlock()
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
	s.ready.Store(true)
	s.raise(workRead | workDrain) // events before ready were ignored
}
