// Package servers_test checks that every benchmark server app (the
// directories next to this file) implements the same pub/sub app: it builds
// each one, starts it on a free loopback port and talks to it with a plain
// gobwas/ws client, over ws:// and over wss://.
package servers_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/bench/internal/tlscert"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

// impls are the server apps under test: every servers/<impl> directory.
var impls = []string{"livepoll", "mizu", "gorilla", "nbio", "gws"}

const wait = 5 * time.Second // deadline of every single wait below

// binDir holds the server binaries, built once per test run for all the tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "servers-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// builds builds each server app once, the first time a test asks for it.
var builds = func() map[string]func() (string, error) {
	m := map[string]func() (string, error){}
	for _, impl := range impls {
		m[impl] = sync.OnceValues(func() (string, error) {
			benchDir, err := harness.BenchDir()
			if err != nil {
				return "", err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			return harness.Build(ctx, benchDir, impl, binDir)
		})
	}
	return m
}()

// built returns the binary of servers/<impl>, built once for every test of the run.
func built(t *testing.T, impl string) string {
	t.Helper()
	bin, err := builds[impl]()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestImplsCoverServersDir(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, impl := range impls {
		known[impl] = true
	}
	for _, e := range entries {
		if e.IsDir() && !known[e.Name()] {
			t.Errorf("servers/%s is not in impls: add it to the test", e.Name())
		}
	}
}

func TestPubSub(t *testing.T) {
	tmp := t.TempDir()
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) {
			t.Parallel()
			bin := built(t, impl)
			// The server exits by itself after a minute at the latest; Stop
			// ends it (by its PID) when the test is done.
			srv, err := harness.StartServer(bin, filepath.Join(tmp, impl+".log"), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Stop(2 * time.Second)
			defer func() {
				if t.Failed() {
					t.Logf("server stderr (tail):\n%s", srv.LogTail(20))
				}
			}()
			testPubSub(t, srv, ws.Dialer{})
		})
	}
}

// TestPubSubTLS runs every app with -cert and -key: the same app over wss:// (served
// each library's way, see its main.go), TLS 1.3 and ALPN http/1.1 negotiated with a Go
// client that trusts the certificate, /stats as plain HTTP on -stats-addr.
func TestPubSubTLS(t *testing.T) {
	tmp := t.TempDir()
	cert, files, err := tlscert.Make(tmp, "servers-test")
	if err != nil {
		t.Fatal(err)
	}
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) {
			t.Parallel()
			bin := built(t, impl)
			srv, err := harness.StartTLSServer(bin, filepath.Join(tmp, impl+"-tls.log"), time.Minute, files)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Stop(2 * time.Second)
			defer func() {
				if t.Failed() {
					t.Logf("server stderr (tail):\n%s", srv.LogTail(20))
				}
			}()
			if !strings.HasPrefix(srv.URL(), "wss://") || srv.StatsAddr == srv.Addr {
				t.Fatalf("URL %s, stats on %s", srv.URL(), srv.StatsAddr)
			}
			d := ws.Dialer{TLSConfig: cert.ClientConfig()}
			c := dialWith(t, d, srv.URL())
			tc, ok := c.conn.(*tls.Conn)
			if !ok {
				t.Fatalf("%T is not a TLS connection", c.conn)
			}
			if st := tc.ConnectionState(); st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "http/1.1" {
				t.Errorf("TLS version %x, ALPN %q; want TLS 1.3 and http/1.1", st.Version, st.NegotiatedProtocol)
			}
			c.close()
			waitStats(t, srv.StatsAddr, "the first client closed", func(s stats.Snapshot) bool {
				return s.Sessions == 0 && s.Auths == 1 && s.Closes == 1
			})
			testPubSub(t, srv, d)
		})
	}
}

// testPubSub checks the app on srv (ws:// or wss://, dialed with d); the counts of
// /stats are taken relative to those at the start.
func testPubSub(t *testing.T, srv *harness.Server, d ws.Dialer) {
	addr := srv.StatsAddr
	base, err := fetchStats(addr)
	if err != nil {
		t.Fatal(err)
	}
	sub := dialWith(t, d, srv.URL())
	defer sub.close()
	pub := dialWith(t, d, srv.URL())
	defer pub.close()

	// Echo comes back in the envelope, data untouched.
	sub.send(t, `{"topic":"subscribe","data":{"topic":"t"}}`)
	pub.send(t, `{"topic":"echo","data":{"x":[1,"y"]}}`)
	pub.expect(t, `{"topic":"echo","data":{"x":[1,"y"]}}`)

	// Both sessions are counted once their first message has been handled;
	// the subscriber's subscribe has taken effect when it is.
	waitStats(t, addr, "2 sessions, 2 auths", func(s stats.Snapshot) bool {
		return s.Sessions == 2 && s.Auths-base.Auths == 2 && s.Closes-base.Closes == 0
	})

	pub.send(t, `{"topic":"publish","data":{"topic":"t","data":{"a":1}}}`)
	sub.expect(t, `{"topic":"t","data":{"a":1}}`)

	// Unsubscribe; the echo behind it proves it has been handled.
	sub.send(t, `{"topic":"unsubscribe","data":{"topic":"t"}}`)
	sub.send(t, `{"topic":"echo","data":1}`)
	sub.expect(t, `{"topic":"echo","data":1}`)
	pub.send(t, `{"topic":"publish","data":{"topic":"t","data":{"a":2}}}`)
	pub.send(t, `{"topic":"echo","data":2}`)
	pub.expect(t, `{"topic":"echo","data":2}`) // the publish has been handled
	sub.send(t, `{"topic":"echo","data":3}`)
	sub.expect(t, `{"topic":"echo","data":3}`) // not {"a":2}
	sub.expectNothing(t, 200*time.Millisecond)
	pub.expectNothing(t, 0) // the publisher never subscribed

	// A closed client is uncounted.
	sub.close()
	waitStats(t, addr, "1 session, 1 close", func(s stats.Snapshot) bool {
		return s.Sessions == 1 && s.Auths-base.Auths == 2 && s.Closes-base.Closes == 1
	})
	pub.close()
	waitStats(t, addr, "0 sessions, 2 closes", func(s stats.Snapshot) bool {
		return s.Sessions == 0 && s.Auths-base.Auths == 2 && s.Closes-base.Closes == 2
	})
}

type client struct {
	conn net.Conn
	rw   io.ReadWriter // reads through the handshake's leftover buffer
}

func dialWith(t *testing.T, d ws.Dialer, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &client{conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{bufio.NewReader(r), conn}}
}

func (c *client) close() {
	if c.conn == nil {
		return
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	_ = ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	_ = c.conn.Close()
	c.conn = nil
}

func (c *client) send(t *testing.T, msg string) {
	t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	if err := wsutil.WriteClientText(c.conn, []byte(msg)); err != nil {
		t.Fatalf("send %s: %v", msg, err)
	}
}

// expect reads the next data frame, which must be the text frame want.
func (c *client) expect(t *testing.T, want string) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	p, op, err := wsutil.ReadServerData(c.rw)
	if err != nil {
		t.Fatalf("waiting for %s: %v", want, err)
	}
	if op != ws.OpText || string(p) != want {
		t.Fatalf("got %v frame %s, want text frame %s", op, p, want)
	}
}

// expectNothing checks that no data frame arrives within d.
func (c *client) expectNothing(t *testing.T, d time.Duration) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	p, op, err := wsutil.ReadServerData(c.rw)
	var ne net.Error
	if err == nil {
		t.Fatalf("unexpected %v frame %s", op, p)
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("waiting for silence: %v", err)
	}
}

func fetchStats(addr string) (stats.Snapshot, error) {
	// harness.FetchStats goes through srvstats.Fetch, which retries an EOF or a reset
	// (nbio's HTTP engine sometimes ends a fresh connection before answering).
	return harness.FetchStats(addr, false)
}

func waitStats(t *testing.T, addr, what string, ok func(stats.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		s, err := fetchStats(addr)
		if err == nil && ok(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: /stats %+v, err %v", what, s, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
