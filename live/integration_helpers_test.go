package live

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Helpers shared by the integration tests: a server with a wrapping middleware, a raw
// client that can misbehave, frame builders, an OnClose log that checks "exactly once",
// and deadline-bound waits.

const waitTimeout = 5 * time.Second

// serveWrapped is testServer with a middleware around the handler (nil: none).
func serveWrapped(t testing.TB, opts Options, wrap func(http.Handler) http.Handler) (*Server, string) {
	t.Helper()
	srv := New(opts)
	var h http.Handler = srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// recv waits for a value on ch, failing the test after waitTimeout.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// noRecv checks that nothing arrives on ch for d.
func noRecv[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(d):
	}
}

// waitUntil polls cond every 2 ms for up to d.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// dialHeader dials with gorilla and extra request headers; it does not fail the test.
func dialHeader(t testing.TB, url string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	c, resp, err := d.Dial(url, h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// closeCode reads from c until an error and returns the close code it carried (-1 when
// the error was not a close frame, i.e. the connection ended without one).
func closeCode(t testing.TB, c *websocket.Conn) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code == websocket.CloseAbnormalClosure {
				t.Logf("abnormal closure: %v", err)
				return -1 // gorilla's name for EOF without a close frame
			}
			return ce.Code
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no close frame and no EOF within %v", waitTimeout)
		}
		return -1
	}
}

// closeLog is an OnClose that records every call per session ID. Create it before the
// server: its cleanup then runs after the server's Close (which waits for every OnClose)
// and checks that each session was reported exactly once.
type closeLog struct {
	mu     sync.Mutex
	counts map[string]int
	errs   map[string]error
	events chan closeEvent
}

type closeEvent struct {
	s   *Session
	err error
}

func newCloseLog(t testing.TB) *closeLog {
	l := &closeLog{counts: map[string]int{}, errs: map[string]error{}, events: make(chan closeEvent, 4096)}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for id, n := range l.counts {
			if n != 1 {
				t.Errorf("OnClose called %d times for session %s", n, id)
			}
		}
	})
	return l
}

func (l *closeLog) OnClose(s *Session, err error) {
	l.mu.Lock()
	l.counts[s.ID()]++
	l.errs[s.ID()] = err
	l.mu.Unlock()
	select {
	case l.events <- closeEvent{s, err}:
	default:
	}
}

func (l *closeLog) next(t testing.TB) closeEvent {
	t.Helper()
	return recv(t, l.events, "OnClose")
}

func (l *closeLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.counts {
		n += c
	}
	return n
}

// rawClient is a WebSocket client on a bare net.Conn, for tests that must misbehave
// (unmasked or half frames, fragments with pings between) or must not start goroutines.
type rawClient struct {
	net.Conn
	br *bufio.Reader
}

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

func hostOf(url string) string {
	u, err := neturl.Parse(url)
	if err != nil {
		panic(err)
	}
	return u.Host
}

// upgradeRequest builds a handshake request. header overrides the defaults; an empty
// value removes a header.
func upgradeRequest(method, url string, header map[string]string) []byte {
	u, err := neturl.Parse(url)
	if err != nil {
		panic(err)
	}
	host, path := u.Host, u.RequestURI()
	keys := []string{"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"}
	vals := map[string]string{
		"Host": host, "Upgrade": "websocket", "Connection": "Upgrade",
		"Sec-WebSocket-Key": testKey, "Sec-WebSocket-Version": "13",
	}
	for k, v := range header {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, path)
	for _, k := range keys {
		if vals[k] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", k, vals[k])
		}
	}
	if method != http.MethodGet {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// rawHandshake sends a handshake request on a new connection and returns the response
// and the connection (closed when the test ends).
func rawHandshake(t testing.TB, url, method string, header map[string]string, after []byte) (*http.Response, *rawClient) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostOf(url), waitTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := &rawClient{Conn: conn, br: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(append(upgradeRequest(method, url, header), after...)); err != nil {
		t.Fatalf("write handshake: %v", err)
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	conn.SetDeadline(time.Time{})
	return resp, rc
}

// rawDial upgrades a raw connection; after is sent in the same write as the request.
func rawDial(t testing.TB, url string, after []byte) *rawClient {
	t.Helper()
	resp, rc := rawHandshake(t, url, http.MethodGet, nil, after)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d", resp.StatusCode)
	}
	return rc
}

// dialIdle upgrades a raw connection without the testing helpers (for bulk tests that
// manage the connections themselves).
func dialIdle(url string, rcvBuf int) (*rawClient, error) {
	d := net.Dialer{Timeout: waitTimeout}
	conn, err := d.Dial("tcp", hostOf(url))
	if err != nil {
		return nil, err
	}
	if rcvBuf > 0 {
		conn.(*net.TCPConn).SetReadBuffer(rcvBuf)
	}
	return upgradeRaw(conn, url)
}

// upgradeRaw sends an upgrade request on conn and reads the 101; any other answer or an
// error closes conn.
func upgradeRaw(conn net.Conn, url string) (*rawClient, error) {
	rc := &rawClient{Conn: conn, br: bufio.NewReaderSize(conn, 256)}
	conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(upgradeRequest(http.MethodGet, url, nil)); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	conn.SetDeadline(time.Time{})
	return rc, nil
}

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// buildFrame encodes one frame: b0 is FIN|RSV|opcode; masked chooses a client frame.
func buildFrame(b0 byte, payload []byte, masked bool) []byte {
	var b []byte
	b = append(b, b0)
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	b = append(b, testMask[:]...)
	for i, c := range payload {
		b = append(b, c^testMask[i%4])
	}
	return b
}

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
	finBit   = 0x80
)

// clientFrame is a masked frame with FIN set.
func clientFrame(op byte, payload []byte) []byte { return buildFrame(finBit|op, payload, true) }

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

func (rc *rawClient) write(t testing.TB, p []byte) {
	t.Helper()
	rc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := rc.Write(p); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// readFrame reads one server frame.
func (rc *rawClient) readFrame() (b0 byte, payload []byte, err error) {
	rc.SetReadDeadline(time.Now().Add(waitTimeout))
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(rc.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(rc.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(rc.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0], payload, nil
}

// mustFrame reads one frame and checks its opcode.
func (rc *rawClient) mustFrame(t testing.TB, op byte) []byte {
	t.Helper()
	b0, p, err := rc.readFrame()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if b0&0x0f != op {
		t.Fatalf("got opcode %#x (%q), want %#x", b0&0x0f, p, op)
	}
	return p
}

// outcome reads until the connection ends and describes how: "close <code>" (followed by
// EOF, or it is reported as "close <code> then open"), "EOF" when it ended without a close
// frame (EOF or reset), "open" when nothing happened before the deadline.
func (rc *rawClient) outcome() string {
	for {
		b0, p, err := rc.readFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "open"
			}
			return "EOF"
		}
		if b0&0x0f != opClose {
			continue
		}
		code := "close"
		if len(p) >= 2 {
			code = fmt.Sprintf("close %d", binary.BigEndian.Uint16(p))
		}
		// The close frame must be followed by EOF, not by more frames or a stall.
		rc.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := rc.br.ReadByte(); err == nil {
			return code + " then more bytes"
		} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			return code + " then open"
		}
		return code
	}
}

// countFDs counts this process's open descriptors.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	return len(ents)
}

// stableGoroutines waits until the goroutine count stops moving (same value for 100 ms)
// and returns it.
func stableGoroutines() int {
	deadline := time.Now().Add(3 * time.Second)
	last, same := runtime.NumGoroutine(), 0
	for same < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
	}
	return last
}

// openSessions is the number of sessions the server holds (open or closing).
func openSessions(srv *Server) int { return srv.Stats().Sessions }

// subscriptions is the number of (session, topic) pairs in the server's registry.
func subscriptions(srv *Server) int { return srv.Stats().Subscriptions }
