package live

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/internal/uring"
)

// A topic large enough to be written by pool workers: every subscriber gets every message
// of a sequential publisher once and in order, though Publish returns before the writes.
func TestParallelFanoutKeepsOrder(t *testing.T) {
	ringBefore := ringFlushes.Load()
	fanoutInOrder(t, Options{QueueSize: 48}, fanoutLarge+fanoutBatch/2+3, 40)
	r, err := uring.New(1)
	if err != nil {
		t.Skipf("io_uring unavailable here (%v): batches used writev, the ring path is unchecked", err)
	}
	r.Close()
	if ringFlushes.Load() == ringBefore {
		t.Fatal("io_uring is available but no batch went through a ring")
	}
}

// A topic below fanoutLarge is written by the publisher itself, through a ring when
// io_uring is available.
func TestSmallTopicThroughRingKeepsOrder(t *testing.T) {
	ringBefore := ringFlushes.Load()
	fanoutInOrder(t, Options{QueueSize: 48}, 40, 200)
	r, err := uring.New(1)
	if err != nil {
		t.Skipf("io_uring unavailable here (%v): the publisher used write, the ring path is unchecked", err)
	}
	r.Close()
	if ringFlushes.Load() == ringBefore {
		t.Fatal("io_uring is available but no Publish to a 40-subscriber topic went through a ring")
	}
}

// The same with io_uring off: batches write with writev.
func TestParallelFanoutKeepsOrderWithWritev(t *testing.T) {
	noRing.Store(true)
	defer noRing.Store(false)
	ringBefore := ringFlushes.Load()
	fanoutInOrder(t, Options{QueueSize: 48}, fanoutLarge+fanoutBatch/2+3, 40)
	if ringFlushes.Load() != ringBefore {
		t.Fatal("a batch went through a ring with io_uring turned off")
	}
}

// Frames of a large fan-out wait in the queues for a pool worker. With one worker (and a
// small queue) the publisher outruns it; subscribers whose sockets take the frames must
// not be closed as slow: the publisher writes their queue itself before calling it full.
func TestFanoutWaitingForWorkersIsNotQueueFull(t *testing.T) {
	fanoutInOrder(t, Options{QueueSize: 4, MaxWorkers: 1}, fanoutLarge+fanoutBatch/2+3, 40)
}

// fanoutInOrder publishes messages to a topic of subs subscribers (an uneven last chunk
// when subs is large) and checks that each gets all of them, once and in order.
func fanoutInOrder(t *testing.T, opts Options, subs, messages int) {
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
	if got := deferredFanouts.Load() - before; subs >= fanoutLarge && got < uint64(messages) {
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
