package live

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/livepoll/livepoll/internal/tlsrec"
	"github.com/livepoll/livepoll/pool"
)

// Serving wss:// from the event loop. ServeTLS accepts like Serve, but each connection's
// goroutine first runs the TLS handshake — crypto/tls's, through an internal/tlsrec
// Runner — and then reads the upgrade request through the record layer the handshake
// left behind. Once the 101 is sealed and written the goroutine returns: the session is
// an ordinary polled session that opens what it reads (tls_read.go) and seals what it
// writes (tls_write.go) with its tlsrec.Conn, and keeps no tls.Conn, no goroutine and,
// while idle, no buffer.
//
// The handshake is driven from the connection's goroutine with blocking reads rather than
// from the poller: it reuses Serve's request reading and answers unchanged, and the
// goroutine is bounded anyway — at most tlsAccepting connections are between accept and
// upgrade at once (the accept loop waits for a free place, so a flood of half-open
// connections waits in the kernel's backlog instead of costing goroutines), each for at
// most tlsHandshakeTimeout, and at most tlsHandshakes of them have a crypto/tls handshake
// running (the Runner's goroutines). Driving it from the poller would save the goroutine
// of a connection that has not sent its ClientHello yet, at the cost of a second
// incremental request reader.

// Bounds of the connections between accept and upgrade (variables for tests).
var (
	// tlsAccepting bounds the connections being handshaken or read at once (a goroutine
	// each, blocked in a read with a 4 KiB buffer).
	tlsAccepting = 1024
	// tlsHandshakes bounds the crypto/tls handshakes running at once (a goroutine and a
	// tls.Conn each, about 28 KB; tlsrec.Options.MaxHandshakes).
	tlsHandshakes = 256
	// tlsHandshakeTimeout bounds a TLS handshake, from accept to the client's Finished;
	// the upgrade request then has handshakeTimeout of its own.
	tlsHandshakeTimeout = 10 * time.Second
)

// ServeTLS is Serve for wss://: it accepts connections on ln, runs their TLS handshake
// with cfg (crypto/tls's handshake, TLS 1.2 and 1.3, ALPN "http/1.1") and serves
// WebSocket upgrades on them with the same answers as Handler. After the handshake the
// records are sealed and opened by the event loop itself, so an idle wss session costs
// no goroutine and no buffer, as a ws:// one (docs/tls.md has the figures and what is
// refused: TLS 1.0 and 1.1, TLS 1.2 suites other than ECDHE with AES-GCM or
// ChaCha20-Poly1305, TLS 1.2 resumption, renegotiation).
//
// cfg needs a certificate (Certificates, GetCertificate or GetConfigForClient); it is
// cloned, so later changes are not seen, and its NextProtos is replaced by "http/1.1"
// (WebSocket is HTTP/1.1 only: a client offered h2 would send an HTTP/2 preface).
// cfg.KeyLogWriter still receives every secret. At most 1,024 connections are being
// handshaken or read at once — past that the accept loop waits, and new connections wait
// in the listener's backlog — at most 256 crypto/tls handshakes run at once, and a
// handshake that takes longer than 10 s is dropped. ServeTLS returns ErrServerClosed
// after Shutdown or Close, or the listener's error, like Serve. Safe for concurrent use
// (one call per listener). MaxUpgradeRate and MaxSessions are applied to the upgrade
// request, so after the handshake, whose cost is then paid.
//
// The client's close_notify ends its session as EOF (io.EOF to OnClose). Records that
// break TLS (a record that fails authentication, say) are answered with the TLS alert
// and close the session without a WebSocket close frame, which nothing may follow; OnClose
// then gets an error wrapping ErrProtocol. A fatal alert from the client closes it with
// another error (Stats.Closed.Error). A server-side close sends the close frame, then
// close_notify.
//
// Handler mounted on an https server keeps working, but its sessions hold a *tls.Conn
// on the portable path (two goroutines each); ServeTLS is the way to serve wss:// from
// the event loop.
func (srv *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	if cfg == nil || len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return errors.New("live: ServeTLS needs a tls.Config with a certificate")
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	runner, err := tlsrec.NewRunner(cfg, tlsrec.Options{
		MaxHandshakes:    tlsHandshakes,
		MaxQueued:        tlsAccepting, // never refused: the accept loop holds the bound
		HandshakeTimeout: tlsHandshakeTimeout,
	})
	if err != nil {
		return err
	}
	tl := &tlsListener{Listener: ln, closed: make(chan struct{})}
	tl.ctx, tl.cancel = context.WithCancel(context.Background())
	var conns sync.WaitGroup
	defer func() {
		// Connections still being handshaken or read stop waiting for their clients.
		tl.cancel()
		runner.Close()
		conns.Wait()
	}()
	if !srv.track(tl) {
		return ErrServerClosed
	}
	defer srv.untrack(tl)
	_ = srv.start() // as in Serve: before the first burst of connections
	places := make(chan struct{}, tlsAccepting)
	var pause time.Duration
	for {
		select {
		case places <- struct{}{}:
		case <-tl.closed:
			return ErrServerClosed
		}
		conn, err := ln.Accept()
		if err != nil {
			<-places
			if stop := srv.acceptFailed(err, &pause); stop != nil {
				return stop
			}
			continue
		}
		pause = 0
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer func() { <-places }()
			srv.serveTLSConn(conn, runner, tl.ctx)
		}()
	}
}

// tlsListener lets Shutdown and Close (which close every tracked listener) wake an
// accept loop that waits for a free place.
type tlsListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
	// ctx ends with the listener: connections between accept and upgrade stop waiting.
	ctx    context.Context
	cancel context.CancelFunc
}

func (l *tlsListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.cancel()
	})
	return l.Listener.Close()
}

// serveTLSConn runs one connection's handshake, then reads and answers its request.
func (srv *Server) serveTLSConn(nc net.Conn, runner *tlsrec.Runner, stop context.Context) {
	deadline := time.Now().Add(tlsHandshakeTimeout)
	_ = nc.SetDeadline(deadline)
	a := &tlsAccept{nc: nc}
	a.mu.Lock()
	a.h = runner.Start(nc.LocalAddr(), nc.RemoteAddr(), a.notify)
	a.mu.Unlock()
	// Shutdown must not wait for a client that sends nothing: wake the read (a callback,
	// not a goroutine per connection).
	defer context.AfterFunc(stop, func() { _ = nc.SetReadDeadline(time.Unix(1, 0)) })()
	c, in, err := a.handshake()
	if err != nil {
		if stop.Err() == nil { // not the shutdown ending it
			srv.stats.tlsHandshakeErrors.Add(1)
		}
		_ = nc.Close()
		return
	}
	_ = nc.SetWriteDeadline(time.Time{})
	tc := &tlsConn{Conn: nc, rec: c, in: in, state: a.h.ConnectionState()}
	srv.serveRequest(tc, func(w http.ResponseWriter, r *http.Request) {
		r.TLS = &tc.state // as net/http sets it for OnAuth and CheckOrigin
		srv.serveTLSUpgrade(w, r)
	})
}

// tlsAccept is the handshake of one accepted connection.
type tlsAccept struct {
	nc net.Conn
	mu sync.Mutex // orders writes of the handshake's output; guards h and over
	h  *tlsrec.Handshake
	// over: the connection's goroutine has taken the result; notify must not touch the
	// read deadline any more.
	over bool
}

// notify runs on the handshake's goroutine (or its timer's): it writes what crypto/tls
// wrote, under mu so that two notifications never reorder it (the socket takes a few KiB
// of handshake at once; the deadline bounds the write), and wakes the connection's
// goroutine from its read once the handshake has ended.
func (a *tlsAccept) notify() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.h == nil {
		return
	}
	if out := a.h.Output(nil); len(out) > 0 {
		_, _ = a.nc.Write(out)
	}
	if !a.over && a.h.Done() {
		_ = a.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// handshake feeds the client's bytes to the handshake until it ends, and returns the
// record layer and the client's bytes that follow its Finished (records for the Conn).
func (a *tlsAccept) handshake() (*tlsrec.Conn, []byte, error) {
	h := a.h
	bp := pool.Get(4 << 10)
	defer pool.Put(bp)
	var after []byte // bytes Feed refused because the handshake had just ended
	for !h.Done() {
		n, err := a.nc.Read(*bp)
		if n > 0 {
			switch ferr := h.Feed((*bp)[:n]); {
			case errors.Is(ferr, tlsrec.ErrHandshakeDone):
				after = append(after, (*bp)[:n]...)
			case ferr != nil:
				a.finish()
				return nil, nil, ferr
			}
		}
		if err != nil && !h.Done() {
			h.Abort()
			return nil, nil, err
		}
	}
	a.finish()
	c, rest, err := h.Result()
	if err != nil {
		return nil, nil, err
	}
	// Undo notify's wake-up; serveRequest sets the request's own deadline.
	_ = a.nc.SetReadDeadline(time.Time{})
	if len(after) > 0 {
		rest = append(rest[:len(rest):len(rest)], after...)
	}
	return c, rest, nil
}

// finish writes the handshake's last output (its Finished, or the alert of a failure)
// before anything the Conn seals, and stops notify from waking the reader.
func (a *tlsAccept) finish() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.over = true
	if out := a.h.Output(nil); len(out) > 0 {
		_, _ = a.nc.Write(out)
	}
}
