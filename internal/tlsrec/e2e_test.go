package tlsrec

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// messages are echoed in this order: small, exactly one record, several records.
var messages = [][]byte{
	[]byte("hello"),
	bytes.Repeat([]byte{'a'}, maxPlaintext),
	bytes.Repeat([]byte("0123456789"), 5000),
}

// dial connects a crypto/tls client to the harness and checks the handshake.
func dial(t testing.TB, h *harness, cfg *tls.Config) *tls.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", h.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(nc, cfg)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		c.Close()
		t.Fatal("handshake:", err)
	}
	return c
}

// echoSession runs one client through handshake, the messages and close_notify, and
// checks both sides. It returns the server's result.
func echoSession(t *testing.T, h *harness, cfg *tls.Config, wantVersion, wantSuite uint16) result {
	t.Helper()
	c := dial(t, h, cfg)
	for _, m := range messages {
		roundTrip(t, c, m)
	}
	if err := c.Close(); err != nil { // sends close_notify
		t.Fatal(err)
	}
	res := h.next()
	if res.conn == nil {
		t.Fatal("server:", res.err)
	}
	if res.err != io.EOF {
		t.Fatalf("server ended with %v, want io.EOF (close_notify)", res.err)
	}
	if v, s := res.conn.Version(), res.conn.CipherSuite(); v != wantVersion || s != wantSuite {
		t.Fatalf("negotiated %x/%s, want %x/%s", v, tls.CipherSuiteName(s), wantVersion, tls.CipherSuiteName(wantSuite))
	}
	if cs := c.ConnectionState(); cs.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("ALPN %q", cs.NegotiatedProtocol)
	}
	return res
}

func TestEchoTLS13(t *testing.T) {
	p := getPKI(t)
	for _, tickets := range []bool{true, false} {
		t.Run(map[bool]string{true: "tickets", false: "no-tickets"}[tickets], func(t *testing.T) {
			cfg := p.serverConfig()
			cfg.SessionTicketsDisabled = !tickets
			h := newHarness(t, cfg, Options{}, 4096)
			ccfg := p.clientConfig()
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			res := echoSession(t, h, ccfg, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
			// The server's first application record follows the tickets it sent
			// inside Handshake (Go sends one), which the client has read.
			want := uint64(0)
			if tickets {
				want = 1
			}
			if res.firstWrite != want || res.firstRead != 0 {
				t.Fatalf("server started at sequence %d (write) %d (read), want %d, 0", res.firstWrite, res.firstRead, want)
			}
			// A second connection resumes when tickets are on.
			c := dial(t, h, ccfg)
			if got := c.ConnectionState().DidResume; got != tickets {
				t.Fatalf("DidResume = %v", got)
			}
			roundTrip(t, c, []byte("again"))
			c.Close()
			if res := h.next(); res.err != io.EOF {
				t.Fatal("resumed server:", res.err)
			}
		})
	}
}

func TestEchoTLS12(t *testing.T) {
	p := getPKI(t)
	for _, id := range TLS12CipherSuites() {
		for _, tickets := range []bool{true, false} {
			name := tls.CipherSuiteName(id) + map[bool]string{true: "/tickets", false: "/no-tickets"}[tickets]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				cfg := p.serverConfig()
				cfg.SessionTicketsDisabled = !tickets
				h := newHarness(t, cfg, Options{}, 4096)
				ccfg := p.clientConfig()
				ccfg.MaxVersion = tls.VersionTLS12
				ccfg.CipherSuites = []uint16{id}
				ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				res := echoSession(t, h, ccfg, tls.VersionTLS12, id)
				if res.firstWrite != 1 || res.firstRead != 1 {
					t.Fatalf("server started at sequence %d (write) %d (read), want 1, 1 (after Finished)", res.firstWrite, res.firstRead)
				}
				// TLS 1.2 sessions are not resumed (see unwrapSession): a full
				// handshake, taken over like the first.
				c := dial(t, h, ccfg)
				if c.ConnectionState().DidResume {
					t.Fatal("a TLS 1.2 session was resumed")
				}
				roundTrip(t, c, []byte("again"))
				c.Close()
				if res := h.next(); res.err != io.EOF {
					t.Fatal("resumed server:", res.err)
				}
			})
		}
	}
}

// TestEchoByteByByte feeds the handshake and every record one byte at a time.
func TestEchoByteByByte(t *testing.T) {
	p := getPKI(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			h := newHarness(t, p.serverConfig(), Options{}, 1)
			ccfg := p.clientConfig()
			ccfg.MaxVersion = v
			c := dial(t, h, ccfg)
			roundTrip(t, c, []byte("one byte at a time"))
			roundTrip(t, c, bytes.Repeat([]byte{'x'}, 3000))
			c.Close()
			if res := h.next(); res.err != io.EOF {
				t.Fatal("server:", res.err)
			}
		})
	}
}

// TestServerKeyUpdate has the server send KeyUpdate(update_requested): crypto/tls's
// client updates its read key, answers with its own KeyUpdate and switches its write key,
// which the server's Open must follow.
func TestServerKeyUpdate(t *testing.T) {
	p := getPKI(t)
	h := newHarness(t, p.serverConfig(), Options{}, 4096)
	c := dial(t, h, p.clientConfig())
	roundTrip(t, c, []byte("before"))
	roundTrip(t, c, []byte("KEYUPDATE 1"))
	roundTrip(t, c, []byte("after the first"))
	roundTrip(t, c, []byte("KEYUPDATE 2"))
	roundTrip(t, c, []byte("after the second"))
	c.Close()
	res := h.next()
	if res.err != io.EOF {
		t.Fatal("server:", res.err)
	}
	// Both directions moved on twice: sequence numbers restarted.
	if res.conn.in.seq > 3 || res.conn.out.seq > 3 {
		t.Fatalf("sequence numbers %d/%d: keys were not updated", res.conn.in.seq, res.conn.out.seq)
	}
}

// TestTruncatedClose: the client's socket closes without close_notify.
func TestTruncatedClose(t *testing.T) {
	p := getPKI(t)
	h := newHarness(t, p.serverConfig(), Options{}, 4096)
	for _, mid := range []bool{false, true} {
		c := dial(t, h, p.clientConfig())
		roundTrip(t, c, []byte("hi"))
		nc := c.NetConn()
		if mid { // half a record, then the end
			nc.Write([]byte{23, 3, 3, 0, 40, 1, 2, 3})
		}
		nc.Close()
		res := h.next()
		if res.err != io.ErrUnexpectedEOF {
			t.Fatalf("mid-record %v: server ended with %v, want io.ErrUnexpectedEOF", mid, res.err)
		}
		if res.conn.partial != nil {
			t.Fatal("the unfinished record's buffer was kept")
		}
	}
}

// TestHandshakeFailureAlert: a client offering no suite the server allows gets
// crypto/tls's alert, and the server reports the handshake error.
func TestHandshakeFailureAlert(t *testing.T) {
	p := getPKI(t)
	h := newHarness(t, p.serverConfig(), Options{}, 4096)
	ccfg := p.clientConfig()
	ccfg.MaxVersion = tls.VersionTLS12
	ccfg.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}
	nc, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(nc, ccfg)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	err = c.Handshake()
	if err == nil || !strings.Contains(err.Error(), "handshake failure") {
		t.Fatalf("client handshake: %v, want a handshake_failure alert", err)
	}
	if res := h.next(); res.err == nil || res.conn != nil {
		t.Fatalf("server: %+v", res)
	}
}

// TestUserKeyLogWriter: the user's KeyLogWriter still gets every line.
func TestUserKeyLogWriter(t *testing.T) {
	p := getPKI(t)
	var log lockedBuffer
	cfg := p.serverConfig()
	cfg.KeyLogWriter = &log
	h := newHarness(t, cfg, Options{}, 4096)
	c := dial(t, h, p.clientConfig())
	roundTrip(t, c, []byte("x"))
	c.Close()
	h.next()
	for _, label := range []string{"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} {
		if !strings.Contains(log.String(), label+" ") {
			t.Errorf("user's key log lacks %s:\n%s", label, log.String())
		}
	}
}

// TestGetConfigForClient: a Config from the user's callback is restricted and captured
// like the main one.
func TestGetConfigForClient(t *testing.T) {
	p := getPKI(t)
	called := make(chan string, 4)
	cfg := &tls.Config{GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		called <- chi.Conn.RemoteAddr().String()
		return p.serverConfig(), nil
	}}
	h := newHarness(t, cfg, Options{}, 4096)
	ccfg := p.clientConfig()
	ccfg.MaxVersion = tls.VersionTLS12
	c := dial(t, h, ccfg)
	roundTrip(t, c, []byte("x"))
	c.Close()
	if res := h.next(); res.err != io.EOF {
		t.Fatal("server:", res.err)
	}
	if addr := <-called; addr != c.LocalAddr().String() {
		t.Fatalf("ClientHelloInfo.Conn.RemoteAddr = %s, want %s", addr, c.LocalAddr())
	}
}

type lockedBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *lockedBuffer) lock() {
	if b.mu == nil {
		b.mu = make(chan struct{}, 1)
	}
	b.mu <- struct{}{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.String()
}

// TestHelloRetryRequest: the server wants P-256, which a Go client does not send a key
// share for, so TLS 1.3 takes a HelloRetryRequest first; the takeover reads the suite
// from the first ServerHello and still counts the tickets.
func TestHelloRetryRequest(t *testing.T) {
	p := getPKI(t)
	cfg := p.serverConfig()
	cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	h := newHarness(t, cfg, Options{}, 4096)
	ccfg := p.clientConfig()
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1) // so that tickets are sent
	res := echoSession(t, h, ccfg, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	// A Go client's first ClientHello has no P-256 share: P-256 means a retry.
	if res.state.CurveID != tls.CurveP256 {
		t.Fatalf("key exchange %v, want P-256 after a HelloRetryRequest", res.state.CurveID)
	}
	if res.firstWrite != 1 {
		t.Fatalf("first write sequence %d, want 1 (one ticket)", res.firstWrite)
	}
}

// TestClientCertificates: with client certificates required, crypto/tls sends the TLS 1.3
// tickets only after the client's Finished; the takeover follows either way.
func TestClientCertificates(t *testing.T) {
	p := getPKI(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			cfg := p.serverConfig()
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
			cfg.ClientCAs = p.pool
			h := newHarness(t, cfg, Options{}, 4096)
			ccfg := p.clientConfig()
			ccfg.MaxVersion = v
			ccfg.Certificates = []tls.Certificate{p.ecdsa}
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			suite := uint16(tls.TLS_AES_128_GCM_SHA256)
			if v == tls.VersionTLS12 {
				suite = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
			}
			res := echoSession(t, h, ccfg, v, suite)
			if len(res.state.PeerCertificates) != 1 {
				t.Fatalf("%d client certificates in the server's state", len(res.state.PeerCertificates))
			}
			if v == tls.VersionTLS13 && res.firstWrite != 1 {
				t.Fatalf("first write sequence %d, want 1 (one ticket)", res.firstWrite)
			}
		})
	}
}
