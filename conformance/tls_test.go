package conformance

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/rawecho"
	"github.com/livepoll/livepoll/internal/testcert"
	"github.com/livepoll/livepoll/live"
)

// startEchoTLS serves the echo engine over wss with live's ServeTLS (the event loop
// seals and opens the records) and returns its address and a client config trusting it.
func startEchoTLS(t *testing.T) (string, *tls.Config) {
	t.Helper()
	cert := testcert.New(t, "conformance")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rawecho.New(16 << 20).(*live.Server)
	served := make(chan error, 1)
	go func() {
		served <- srv.ServeTLS(ln, cert.ServerConfig())
	}()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, live.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String(), cert.ClientConfig()
}

// dialConn opens the connection dial runs the opening handshake on: TCP, or TLS over
// TCP while TestConformanceTLS runs.
var dialConn = func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

// TestConformanceTLS runs every case over wss and wants the same verdicts as over ws.
func TestConformanceTLS(t *testing.T) {
	addr, client := startEchoTLS(t)
	plain := dialConn
	t.Cleanup(func() { dialConn = plain })
	dialConn = func(addr string) (net.Conn, error) {
		c, err := plain(addr)
		if err != nil {
			return nil, err
		}
		c.(*net.TCPConn).SetNoDelay(true)
		tc := tls.Client(c, client)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	runAllCases(t, addr, " over wss")
}
