package live

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/internal/tlsrec"
	"github.com/livepoll/livepoll/pool"
)

var tlsVersions = []struct {
	name    string
	version uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// wssDial dials url with gorilla over TLS limited to version (0: any).
func wssDial(t testing.TB, url string, client *tls.Config, version uint16) *websocket.Conn {
	t.Helper()
	cfg := client.Clone()
	if version != 0 {
		cfg.MinVersion, cfg.MaxVersion = version, version
	}
	return wssDialWithin(t, url, cfg, waitTimeout)
}

func echoServer(opts Options) *Server {
	opts.OnMessage = func(_ context.Context, s *Session, topic string, data []byte) {
		s.Send(Message{Topic: topic, Data: data})
	}
	return New(opts)
}

// Echo over wss with gorilla and coder/websocket, TLS 1.2 and 1.3, from 5 bytes to
// 1 MiB; the sessions are carried by the event loop (no tls.Conn, no goroutine).
func TestServeTLSEcho(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv := echoServer(Options{})
			url, client := serveTLS(t, srv)
			c := wssDial(t, url, client, v.version)
			if st := c.UnderlyingConn().(*tls.Conn).ConnectionState(); st.Version != v.version || st.NegotiatedProtocol != "http/1.1" {
				t.Fatalf("negotiated version %x ALPN %q", st.Version, st.NegotiatedProtocol)
			}
			for _, size := range []int{5, 200, 20 << 10, 1 << 20} {
				data := `"` + strings.Repeat("x", size) + `"`
				send(t, c, `{"topic":"echo","data":`+data+`}`)
				if _, m := readMsg(t, c); m != `{"topic":"echo","data":`+data+`}` {
					t.Fatalf("%d bytes: echo came back as %d bytes", size, len(m))
				}
			}

			cfg := client.Clone()
			cfg.MinVersion, cfg.MaxVersion = v.version, v.version
			tr := &http.Transport{TLSClientConfig: cfg}
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			cc, _, err := coder.Dial(ctx, url, &coder.DialOptions{HTTPClient: &http.Client{Transport: tr}})
			if err != nil {
				t.Fatal("coder/websocket dial:", err)
			}
			cc.SetReadLimit(2 << 20)
			for _, size := range []int{5, 1 << 20} {
				msg := []byte(`{"topic":"echo","data":"` + strings.Repeat("y", size) + `"}`)
				if err := cc.Write(ctx, coder.MessageText, msg); err != nil {
					t.Fatal(err)
				}
				if _, got, err := cc.Read(ctx); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("coder/websocket echo of %d bytes: %d bytes back, err %v", size, len(got), err)
				}
			}
			if err := cc.Close(coder.StatusNormalClosure, ""); err != nil {
				t.Fatal("coder/websocket close:", err)
			}
			if onLoop, all := tlsSessions(srv); onLoop != all || all == 0 {
				t.Fatalf("%d of %d sessions on the event loop with their records", onLoop, all)
			}
		})
	}
}

// One Publish reaches wss and ws subscribers alike, in order, through the direct writes
// of a small topic and through the deferred fan-out of a large one (fanoutLarge).
func TestServeTLSFanoutMixed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wss, ws  int
		messages int
		large    bool
	}{
		{"small", 30, 30, 20, false},
		{"large", fanoutLarge/2 + 50, fanoutLarge / 2, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.large && testing.Short() {
				t.Skip("-short: 1,100 TLS handshakes")
			}
			var srv *Server
			srv = New(Options{OnMessage: func(_ context.Context, s *Session, topic string, _ []byte) {
				srv.Subscribe(s, "room")
				s.Send(Message{Topic: "subscribed"})
			}})
			url, client := serveTLS(t, srv)
			hs := httptest.NewServer(srv.Handler())
			t.Cleanup(hs.Close)
			wsURL := "ws" + strings.TrimPrefix(hs.URL, "http")
			var clients []*rawClient
			for i := range tc.wss + tc.ws {
				var rc *rawClient
				if i < tc.wss {
					rc = tlsRawDial(t, url, client, tlsVersions[i%2].version, nil)
				} else {
					rc = rawDial(t, wsURL, nil)
				}
				rc.write(t, clientFrame(opText, []byte(`{"topic":"sub"}`)))
				rc.SetReadDeadline(time.Now().Add(waitTimeout))
				if p := rc.mustFrame(t, opText); string(p) != `{"topic":"subscribed"}` {
					t.Fatalf("client %d: %s", i, p)
				}
				clients = append(clients, rc)
			}
			before := deferredFanouts.Load()
			for i := range tc.messages {
				srv.Publish("room", []byte(fmt.Sprint(i)))
			}
			if tc.large && deferredFanouts.Load() == before {
				t.Fatal("the large topic was not written by the deferred fan-out")
			}
			for n, rc := range clients {
				rc.SetReadDeadline(time.Now().Add(waitTimeout))
				for i := range tc.messages {
					want := fmt.Sprintf(`{"topic":"room","data":%d}`, i)
					if p := rc.mustFrame(t, opText); string(p) != want {
						t.Fatalf("client %d (wss: %v): got %s, want %s", n, n < tc.wss, p, want)
					}
				}
			}
			if onLoop, _ := tlsSessions(srv); onLoop != tc.wss {
				t.Fatalf("%d wss sessions on the event loop, want %d", onLoop, tc.wss)
			}
		})
	}
}

// A server-side close sends the close frame, then close_notify, then the TCP FIN; a
// client's close frame is answered the same way, and OnClose gets nil both times.
func TestServeTLSCloseHandshake(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			closes := newCloseLog(t)
			srv := New(Options{
				OnMessage: func(_ context.Context, s *Session, topic string, _ []byte) {
					if topic == "close" {
						s.Close()
					}
				},
				OnClose: closes.OnClose,
			})
			url, client := serveTLS(t, srv)
			for _, clientCloses := range []bool{false, true} {
				var raw *recordingConn
				rc := tlsRawDial(t, url, client, v.version, &raw)
				if clientCloses {
					rc.write(t, clientFrame(opClose, closePayload(1000, "bye")))
				} else {
					rc.write(t, clientFrame(opText, []byte(`{"topic":"close"}`)))
				}
				rc.SetReadDeadline(time.Now().Add(waitTimeout))
				if got := rc.outcome(); got != "close 1000" {
					t.Fatalf("client closes %v: %s, want the close frame then EOF", clientCloses, got)
				}
				if ev := closes.next(t); ev.err != nil {
					t.Fatalf("OnClose: %v", ev.err)
				}
				// The last record before the FIN is close_notify: an alert record in
				// TLS 1.2 (type 21, explicit nonce 8 + alert 2 + tag 16); in TLS 1.3 an
				// encrypted record of alert 2 + type 1 + tag 16.
				types, lens := raw.records()
				last := len(types) - 1
				wantType, wantLen := byte(21), 26
				if v.version == tls.VersionTLS13 {
					wantType, wantLen = 23, 19
				}
				if last < 0 || types[last] != wantType || lens[last] != wantLen {
					t.Fatalf("last records %v %v: want close_notify (type %d, %d bytes) last", types, lens, wantType, wantLen)
				}
			}
		})
	}
}

// A wss client that never reads: its queue bounds hold (the sealed copies count against
// QueueBytes) and it is closed with ErrQueueFull; the server stays healthy.
func TestServeTLSNonReader(t *testing.T) {
	closes := newCloseLog(t)
	var srv *Server
	srv = New(Options{
		QueueBytes: 256 << 10,
		OnMessage: func(_ context.Context, s *Session, _ string, _ []byte) {
			srv.Subscribe(s, "flood")
			s.Send(Message{Topic: "ok"})
		},
		OnClose: closes.OnClose,
	})
	url, client := serveTLS(t, srv)
	var raw *recordingConn
	rc := tlsRawDial(t, url, client, 0, &raw)
	raw.Conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	rc.write(t, clientFrame(opText, []byte(`{"topic":"sub"}`)))
	rc.SetReadDeadline(time.Now().Add(waitTimeout))
	rc.mustFrame(t, opText)
	data := []byte(`"` + strings.Repeat("z", 16<<10) + `"`)
	deadline := time.Now().Add(waitTimeout)
	for srv.Stats().Closed.QueueFull == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no ErrQueueFull after %d bytes out", srv.Stats().BytesOut)
		}
		srv.Publish("flood", data)
	}
	if ev := closes.next(t); !errors.Is(ev.err, ErrQueueFull) {
		t.Fatalf("OnClose: %v, want ErrQueueFull", ev.err)
	}
	// Another client is served normally.
	ok := tlsRawDial(t, url, client, 0, nil)
	ok.write(t, clientFrame(opText, []byte(`{"topic":"sub"}`)))
	ok.SetReadDeadline(time.Now().Add(waitTimeout))
	if p := ok.mustFrame(t, opText); string(p) != `{"topic":"ok"}` {
		t.Fatalf("healthy client got %s", p)
	}
}

// Bytes that are not TLS records after the handshake: the server answers with an alert
// and closes without a WebSocket close frame; OnClose gets ErrProtocol wrapping the
// *tlsrec.AlertError. A fatal alert from the client closes its session too.
func TestServeTLSGarbage(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			closes := newCloseLog(t)
			srv := echoServer(Options{OnClose: closes.OnClose})
			url, client := serveTLS(t, srv)
			var raw *recordingConn
			rc := tlsRawDial(t, url, client, v.version, &raw)
			// A well-formed header whose body does not authenticate.
			garbage := append([]byte{23, 3, 3, 0, 40}, bytes.Repeat([]byte{0xAB}, 40)...)
			if _, err := raw.Conn.Write(garbage); err != nil {
				t.Fatal(err)
			}
			ev := closes.next(t)
			var alert *tlsrec.AlertError
			if !errors.Is(ev.err, ErrProtocol) || !errors.As(ev.err, &alert) || !errors.Is(ev.err, tlsrec.ErrBadRecordMAC) {
				t.Fatalf("OnClose: %v, want ErrProtocol and bad_record_mac", ev.err)
			}
			rc.SetReadDeadline(time.Now().Add(waitTimeout))
			_, err := rc.br.ReadByte()
			if err == nil || !strings.Contains(err.Error(), "bad record MAC") {
				t.Fatalf("client read: %v, want the server's bad_record_mac alert", err)
			}
			if got := srv.Stats().Closed.Protocol; got != 1 {
				t.Fatalf("Stats.Closed.Protocol = %d", got)
			}
		})
	}
}

// Clients that stop in the middle of the handshake are bounded: goroutines stay below
// tlsAccepting (connections between accept and upgrade) plus tlsHandshakes (running
// crypto/tls handshakes) whatever their number, every one is dropped after
// tlsHandshakeTimeout, and a good client is served once places free up.
func TestServeTLSHalfOpenBounded(t *testing.T) {
	a, h, d := tlsAccepting, tlsHandshakes, tlsHandshakeTimeout
	t.Cleanup(func() { tlsAccepting, tlsHandshakes, tlsHandshakeTimeout = a, h, d })
	tlsAccepting, tlsHandshakes, tlsHandshakeTimeout = 128, 16, 2*time.Second
	const clients = 256
	hello := clientHello(t)

	base := stableGoroutines()
	srv := echoServer(Options{})
	url, client := serveTLS(t, srv)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Goroutines are sampled in the first half of the handshake timeout only: when it
	// fires, each timer runs its function on a goroutine of its own for a moment.
	start := time.Now()
	peak := 0
	sample := func() {
		if time.Since(start) < tlsHandshakeTimeout/2 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	for i := range clients {
		nc, err := dialTCP(hostOf(url))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		switch i % 3 {
		case 0: // nothing
		case 1:
			nc.Write(hello[:len(hello)/2]) // half a ClientHello
		case 2:
			nc.Write(hello) // a whole one, then silence: a running handshake
		}
		sample()
	}
	time.Sleep(200 * time.Millisecond)
	sample()
	if peak == 0 {
		t.Fatal("no sample in time: dialing took longer than half the handshake timeout")
	}
	// Per accepted connection: its goroutine; per running handshake: the Runner's. Plus
	// the server's own few (sweeper, poller, workers, ServeTLS, the test's).
	if bound := base + tlsAccepting + tlsHandshakes + 40; peak > bound {
		t.Fatalf("%d goroutines with %d half-open clients, bound %d", peak, clients, bound)
	}
	t.Logf("%d goroutines at most with %d half-open clients (%d before)", peak, clients, base)
	// Every half-open connection is dropped in time (tlsHandshakeTimeout each, in batches
	// of tlsAccepting), and a good client then gets through.
	batches := (clients + tlsAccepting - 1) / tlsAccepting
	c := wssDialWithin(t, url, client, time.Duration(batches+2)*tlsHandshakeTimeout)
	send(t, c, `{"topic":"t","data":1}`)
	if _, m := readMsg(t, c); m != `{"topic":"t","data":1}` {
		t.Fatalf("echo %s", m)
	}
	// By then the server has closed every half-open connection.
	deadline := time.Now().Add(waitTimeout)
	for i, nc := range conns {
		nc.SetReadDeadline(deadline)
		if _, err := io.Copy(io.Discard, nc); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("half-open client %d still open", i)
			}
		}
	}
	// Each of them counts as a failed handshake: timed out, or (a third of them)
	// refused for an incomplete ClientHello. The good client does not.
	if got := srv.Stats().TLSHandshakeErrors; got != clients {
		t.Fatalf("Stats.TLSHandshakeErrors = %d, want %d", got, clients)
	}
}

// clientHello returns the first flight of a crypto/tls client.
func clientHello(t testing.TB) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: "localhost"}).Handshake()
	b.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 8<<10)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, waitTimeout) }

// wssDialWithin dials with gorilla, allowing the handshake d.
func wssDialWithin(t testing.TB, url string, client *tls.Config, d time.Duration) *websocket.Conn {
	t.Helper()
	dialer := websocket.Dialer{TLSClientConfig: client, HandshakeTimeout: d}
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// 300 messages in one flight, with the client's close_notify right behind them: the
// turn bounds split them over several turns (the rest waits as plaintext in pending),
// every one is answered in order, and then the close_notify ends the session as EOF.
func TestServeTLSTurnsThenCloseNotify(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			closes := newCloseLog(t)
			srv := echoServer(Options{OnClose: closes.OnClose})
			url, client := serveTLS(t, srv)
			rc := tlsRawDial(t, url, client, v.version, nil)
			const n = 300
			var flight []byte
			for i := range n {
				flight = append(flight, clientFrame(opText, fmt.Appendf(nil, `{"topic":"t","data":%d}`, i))...)
			}
			rc.write(t, flight)
			if err := rc.Conn.(*tls.Conn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				rc.SetReadDeadline(time.Now().Add(waitTimeout))
				if p := rc.mustFrame(t, opText); string(p) != fmt.Sprintf(`{"topic":"t","data":%d}`, i) {
					t.Fatalf("answer %d: %s", i, p)
				}
			}
			if got := rc.outcome(); got != "EOF" {
				t.Fatalf("after the answers: %s, want EOF", got)
			}
			if ev := closes.next(t); ev.err != io.EOF {
				t.Fatalf("OnClose: %v, want io.EOF", ev.err)
			}
		})
	}
}

// Keys compacted after every read (tlsCompactAfter 0) are made again for each use, in
// both directions, under TLS 1.2 and 1.3.
func TestServeTLSCompactedKeys(t *testing.T) {
	// Restored after the servers' cleanups (registered later, run earlier) stopped them.
	old := tlsCompactAfter
	t.Cleanup(func() { tlsCompactAfter = old })
	tlsCompactAfter = 0
	for _, v := range tlsVersions {
		srv := echoServer(Options{})
		url, client := serveTLS(t, srv)
		c := wssDial(t, url, client, v.version)
		for i := range 5 {
			msg := fmt.Sprintf(`{"topic":"t","data":%d}`, i)
			send(t, c, msg)
			if _, m := readMsg(t, c); m != msg {
				t.Fatalf("%s: echo %s, want %s", v.name, m, msg)
			}
		}
	}
}

// A Config without a certificate is refused at once rather than failing every handshake.
func TestServeTLSNeedsACertificate(t *testing.T) {
	srv := New(Options{})
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, cfg := range []*tls.Config{nil, {}} {
		if err := srv.ServeTLS(ln, cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("ServeTLS(%v): %v", cfg, err)
		}
	}
}

// Shutdown over wss: every client gets the close frame (1001) and answers it, the
// closing handshakes complete (close_notify both ways) and Shutdown returns well before
// the closing timeout would have ended them.
func TestServeTLSShutdown(t *testing.T) {
	closes := newCloseLog(t)
	srv := echoServer(Options{OnClose: closes.OnClose})
	url, client := serveTLS(t, srv)
	const n = 20
	codes := make(chan int, n)
	for range n {
		c := wssDial(t, url, client, 0)
		go func() {
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			_, _, err := c.ReadMessage() // gorilla answers the close frame itself
			c.Close()                    // and then the client closes: close_notify, FIN
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				codes <- ce.Code
			} else {
				codes <- -1
			}
		}()
	}
	within(t, "sessions", func() bool { return srv.Stats().Sessions == n })
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v after %v", err, time.Since(start))
	}
	for range n {
		if code := recv(t, codes, "client's close"); code != 1001 {
			t.Fatalf("client got close code %d, want 1001", code)
		}
		if ev := closes.next(t); !errors.Is(ev.err, ErrServerClosed) {
			t.Fatalf("OnClose: %v", ev.err)
		}
	}
	if got := srv.Stats().Closed.Shutdown; got != n {
		t.Fatalf("Stats.Closed.Shutdown = %d, want %d", got, n)
	}
}

// choppyConn writes in pieces of 1 to 7 bytes, so that the server's reads end inside
// records (and inside record headers) all the time.
type choppyConn struct {
	net.Conn
	i int
}

func (c *choppyConn) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c.i++
		k := min(1+c.i%7, len(p)-n)
		w, err := c.Conn.Write(p[n : n+k])
		n += w
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The handshake, the upgrade request and messages up to two records long, all arriving
// a few bytes at a time: unfinished records wait in the session's record layer and
// complete over later reads.
func TestServeTLSRecordsSplit(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv := echoServer(Options{})
			url, client := serveTLS(t, srv)
			cfg := client.Clone()
			cfg.MinVersion, cfg.MaxVersion = v.version, v.version
			d := websocket.Dialer{
				TLSClientConfig:  cfg,
				HandshakeTimeout: waitTimeout,
				NetDial: func(network, addr string) (net.Conn, error) {
					nc, err := net.Dial(network, addr)
					if err != nil {
						return nil, err
					}
					nc.(*net.TCPConn).SetNoDelay(true)
					return &choppyConn{Conn: nc}, nil
				},
			}
			c, _, err := d.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, size := range []int{1, 300, 20 << 10} {
				msg := `{"topic":"t","data":"` + strings.Repeat("s", size) + `"}`
				send(t, c, msg)
				if _, m := readMsg(t, c); m != msg {
					t.Fatalf("%d bytes: echo of %d bytes", size, len(m))
				}
			}
		})
	}
}

// Where the platform has no poller, ServeTLS's sessions take the portable path: its
// reader and writer goroutines move bytes through the connection that opens and seals
// records. Simulated here by an engine started without a poller.
func TestServeTLSPortablePath(t *testing.T) {
	closes := newCloseLog(t)
	srv := echoServer(Options{OnClose: closes.OnClose})
	srv.eng = &engine{
		pool: pool.New(srv.opts.MaxWorkers, 10*time.Second),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go srv.sweep()
	url, client := serveTLS(t, srv)
	c := wssDial(t, url, client, 0)
	for _, size := range []int{5, 1 << 20} {
		msg := `{"topic":"t","data":"` + strings.Repeat("p", size) + `"}`
		send(t, c, msg)
		if _, m := readMsg(t, c); m != msg {
			t.Fatalf("%d bytes: echo of %d bytes", size, len(m))
		}
	}
	if onLoop, all := tlsSessions(srv); onLoop != 0 || all != 1 {
		t.Fatalf("%d of %d sessions on the event loop, want the portable path", onLoop, all)
	}
	// A client's close is answered with a close frame (sealed by the connection).
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	if code := closeCode(t, c); code != 1000 {
		t.Fatalf("close code %d", code)
	}
	if ev := closes.next(t); ev.err != nil {
		t.Fatalf("OnClose: %v", ev.err)
	}
}

// OnAuth sees the handshake's state in r.TLS, client certificates included.
func TestServeTLSClientCertificate(t *testing.T) {
	cfg, roots := testPKI(t)
	cfg = cfg.Clone()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = roots // the client presents the server's certificate (good for both)
	users := make(chan string, 1)
	srv := echoServer(Options{OnAuth: func(_ context.Context, r *http.Request) (any, error) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return nil, errors.New("no client certificate")
		}
		users <- r.TLS.PeerCertificates[0].Subject.CommonName
		return nil, nil
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, cfg) }()
	defer func() {
		srv.Close()
		<-served
	}()
	client := &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: cfg.Certificates}
	c := wssDial(t, "wss://"+ln.Addr().String()+"/", client, tls.VersionTLS13)
	if u := recv(t, users, "OnAuth"); u != "localhost" {
		t.Fatalf("OnAuth saw client certificate %q", u)
	}
	send(t, c, `{"topic":"t","data":1}`)
	if _, m := readMsg(t, c); m != `{"topic":"t","data":1}` {
		t.Fatalf("echo %s", m)
	}
}
