package live

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

// Close while upgrades are in flight, on the polled and on the portable (TLS) path: every
// session that got in is closed, and no goroutine or registration is left behind (the
// leak check in TestMain fails the package otherwise).
func TestCloseRacingUpgrades(t *testing.T) {
	for _, tlsPath := range []bool{false, true} {
		t.Run(map[bool]string{false: "polled", true: "tls"}[tlsPath], func(t *testing.T) {
			srv := New(Options{})
			var hs *httptest.Server
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
			if tlsPath {
				hs = httptest.NewTLSServer(srv.Handler())
				d.TLSClientConfig = hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
			} else {
				hs = httptest.NewServer(srv.Handler())
			}
			defer hs.Close()
			url := "ws" + strings.TrimPrefix(hs.URL, "http")
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if c, _, err := d.Dial(url, nil); err == nil {
							c.SetReadDeadline(time.Now().Add(5 * time.Second))
							for {
								if _, _, err := c.ReadMessage(); err != nil {
									break // closed by the server: 1001 or EOF
								}
							}
							c.Close()
						}
					}
				})
			}
			time.Sleep(100 * time.Millisecond)
			done := make(chan error, 1)
			go func() { done <- srv.Close() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not return within 10 s")
			}
			close(stop)
			wg.Wait()
			if n := srv.Stats().Sessions; n != 0 {
				t.Fatalf("%d sessions after Close", n)
			}
		})
	}
}

// A message followed at once by the client's FIN: the read that returns the message is
// short, and the session must still see the EOF behind it (the hangup event makes it read
// on), not wait for a keepalive timeout. Repeated, since data and FIN may arrive in one
// event or two.
func TestMessageThenHangupIsSeen(t *testing.T) {
	closed := make(chan error, 64)
	_, url := testServer(t, Options{
		PingInterval: -1, IdleTimeout: -1, // only the EOF can end these sessions
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {},
		OnClose:   func(s *Session, err error) { closed <- err },
	})
	for i := range 30 {
		rc := rawDial(t, url, nil)
		if _, err := rc.Write(clientFrame(0x1, []byte(`{"topic":"t","data":1}`))); err != nil {
			t.Fatal(err)
		}
		rc.Conn.(*net.TCPConn).CloseWrite()
		select {
		case err := <-closed:
			if !errors.Is(err, io.EOF) {
				t.Fatalf("connection %d: OnClose(%v), want io.EOF", i, err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("connection %d: EOF after a message not seen within 3 s", i)
		}
	}
}

// TestSessionSize keeps a Session in the 256-byte size class on 64-bit platforms: it is
// allocated per connection, and the next class (288) would add 32 bytes to every idle one.
func TestSessionSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the size class is checked on 64-bit platforms")
	}
	if got := unsafe.Sizeof(Session{}); got > 256 {
		t.Fatalf("Session is %d bytes, over the 256-byte size class", got)
	}
}
