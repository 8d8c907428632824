package live

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A topic large enough to be written by pool workers: every subscriber gets every message
// of a sequential publisher once and in order, though Publish returns before the writes.
func TestParallelFanoutKeepsOrder(t *testing.T) {
	fanoutInOrder(t, Options{QueueSize: 48}, 40)
}

// Frames of a large fan-out wait in the queues for a pool worker. With one worker (and a
// small queue) the publisher outruns it; subscribers whose sockets take the frames must
// not be closed as slow: the publisher writes their queue itself before calling it full.
func TestFanoutWaitingForWorkersIsNotQueueFull(t *testing.T) {
	fanoutInOrder(t, Options{QueueSize: 4, MaxWorkers: 1}, 40)
}

func fanoutInOrder(t *testing.T, opts Options, messages int) {
	const subs = fanoutLarge + fanoutBatch/2 + 3 // uneven last chunk
	var srv *Server
	opts.OnMessage = func(ctx context.Context, s *Session, topic string, data []byte) {
		srv.Subscribe(s, "big")
		s.Send(Message{Topic: "ok"})
	}
	srv, url := testServer(t, opts)
	conns := make([]*websocket.Conn, subs)
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	for i := range conns {
		wg.Go(func() {
			d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
			c, _, err := d.Dial(url, nil)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := c.WriteMessage(websocket.TextMessage, []byte(`{"topic":"sub"}`)); err != nil {
				errs <- err
				return
			}
			if _, p, err := c.ReadMessage(); err != nil || string(p) != `{"topic":"ok"}` {
				errs <- fmt.Errorf("subscribe answer %q, %v", p, err)
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	before := deferredFanouts.Load()
	for n := range messages {
		srv.Publish("big", fmt.Appendf(nil, "%d", n))
	}
	if got := deferredFanouts.Load() - before; got < uint64(messages) {
		t.Fatalf("%d of %d Publish calls handed writes to workers; the test did not exercise that path", got, messages)
	}
	for i, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for n := range messages {
				_, p, err := c.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("subscriber %d, message %d: %v", i, n, err)
					return
				}
				if want := fmt.Sprintf(`{"topic":"big","data":%d}`, n); string(p) != want {
					errs <- fmt.Errorf("subscriber %d got %s, want %s", i, p, want)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if st := srv.Stats(); st.MessagesOut < uint64(subs*messages) || st.Closed.QueueFull != 0 {
		t.Fatalf("stats: %d out (want ≥ %d), %d closed for a full queue", st.MessagesOut, subs*messages, st.Closed.QueueFull)
	}
}

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
