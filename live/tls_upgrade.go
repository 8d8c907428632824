package live

import "net/http"

// serveTLSUpgrade is serveHTTP for a connection ServeTLS has handshaken (w hijacks a
// *tlsConn): the same checks and answers (admit), sealed; then the session is made with
// the connection's record layer. serveHTTP (upgrade.go) hands a *tls.Conn to the
// portable path and must stay that portable.
func (srv *Server) serveTLSUpgrade(w http.ResponseWriter, r *http.Request) {
	a, ok := srv.admit(w, r)
	if !ok {
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
	if _, err := tc.Write(acceptResponse(a.key, a.ext)); err != nil {
		_ = tc.Close()
		return
	}
	s := &Session{
		id:      srv.opts.IDGenerator(),
		value:   a.value,
		srv:     srv,
		fd:      -1,
		fdOpen:  true,
		zbits:   a.zbits,
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
	srv.launch(s)
}
