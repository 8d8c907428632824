package live

import (
	"bufio"
	"net"
	"net/http"
)

// serveTLSUpgrade is serveHTTP for a connection ServeTLS has handshaken (w hijacks a
// *tlsConn): the same checks and answers (admit), sealed; then the session is made with
// the connection's record layer. serveHTTP (upgrade.go) hands a *tls.Conn to the
// portable path and must stay that portable.
func (srv *Server) serveTLSUpgrade(w http.ResponseWriter, r *http.Request) {
	srv.upgrade(w, r, srv.tlsSession)
}

// tlsSession answers 101 through the record layer and makes the session of a *tlsConn.
func (srv *Server) tlsSession(r *http.Request, a admission, conn net.Conn, brw *bufio.ReadWriter) *Session {
	tc := conn.(*tlsConn)
	pre := tc.takeBuffered(brw.Reader)
	if _, err := tc.Write(acceptResponse(a.key, a.ext)); err != nil {
		_ = tc.Close()
		return nil
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
		return s
	}
	fd, keep, ok := detachFD(tc.Conn)
	if !ok {
		srv.opts.Logger.Error("live: no descriptor for a TLS connection")
		_ = tc.Close()
		return nil
	}
	if keep {
		s.conn = tc.Conn // owns fd
	}
	s.fd, s.tls = int32(fd), tc.rec
	if !srv.register(s) {
		return nil
	}
	return s
}
