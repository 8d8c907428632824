package live

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const orderCount = 10000

// readSeq reads n messages {"topic":topic,"data":i} with coder/websocket on its own
// goroutine and reports the first problem (or nil) when done.
func readSeq(c *websocket.Conn, topic string, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := range n {
			_, p, err := c.Read(ctx)
			if err != nil {
				done <- fmt.Errorf("after %d of %d messages: %w", i, n, err)
				return
			}
			if want := fmt.Sprintf(`{"topic":%q,"data":%d}`, topic, i); string(p) != want {
				done <- fmt.Errorf("message %d is %s, want %s", i, p, want)
				return
			}
		}
		done <- nil
	}()
	return done
}

func dialCoder(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("coder dial: %v", err)
	}
	c.SetReadLimit(4 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func writeCoder(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("coder write: %v", err)
	}
}

func waitErr(t testing.TB, ch <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: timed out after %v", what, d)
	}
}

func TestSend10000InOrder(t *testing.T) {
	t.Parallel()
	sessions := make(chan *Session, 1)
	_, url := testServer(t, Options{
		QueueSize: 2 * orderCount, // this test is about order, not about backpressure
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) { sessions <- s },
	})
	c := dialCoder(t, url)
	writeCoder(t, c, `{"topic":"hello"}`)
	s := recv(t, sessions, "session")
	done := readSeq(c, "seq", orderCount)
	for i := range orderCount {
		if err := s.Send(Message{Topic: "seq", Data: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	waitErr(t, done, 30*time.Second, "reading 10000 sent messages")
}

func TestPublish10000InOrder(t *testing.T) {
	t.Parallel()
	joined := make(chan struct{}, 1)
	var srv *Server
	srv, url := testServer(t, Options{
		QueueSize: 2 * orderCount,
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			srv.Subscribe(s, "seq")
			joined <- struct{}{}
		},
	})
	c := dialCoder(t, url)
	writeCoder(t, c, `{"topic":"join"}`)
	recv(t, joined, "join")
	done := readSeq(c, "seq", orderCount)
	for i := range orderCount {
		srv.Publish("seq", []byte(strconv.Itoa(i)))
	}
	waitErr(t, done, 30*time.Second, "reading 10000 published messages")
}

func TestClientMessagesInOrderAndNeverConcurrent(t *testing.T) {
	t.Parallel()
	const sessions = 4
	type state struct {
		inFlight atomic.Int32
		mu       sync.Mutex
		seq      []int
	}
	var (
		mu     sync.Mutex
		states = map[*Session]*state{}
	)
	stateOf := func(s *Session) *state {
		mu.Lock()
		defer mu.Unlock()
		st := states[s]
		if st == nil {
			st = &state{}
			states[s] = st
		}
		return st
	}
	var overlaps, afterClose atomic.Int32
	var total atomic.Int64
	closed := make(chan int, sessions)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			st := stateOf(s)
			if st.inFlight.Add(1) != 1 {
				overlaps.Add(1)
			}
			n, _ := strconv.Atoi(string(data))
			st.mu.Lock()
			st.seq = append(st.seq, n)
			st.mu.Unlock()
			if n%64 == 0 {
				time.Sleep(10 * time.Microsecond) // widen the window for an overlap
			}
			total.Add(1)
			st.inFlight.Add(-1)
		},
		OnClose: func(s *Session, err error) {
			st := stateOf(s)
			if st.inFlight.Load() != 0 {
				afterClose.Add(1)
			}
			st.mu.Lock()
			closed <- len(st.seq)
			st.mu.Unlock()
		},
	})
	var writers sync.WaitGroup
	var conns []*websocket.Conn
	for range sessions {
		conns = append(conns, dialCoder(t, url))
	}
	errs := make(chan error, sessions)
	for _, c := range conns {
		writers.Add(1)
		go func() {
			defer writers.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := range orderCount {
				if err := c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"topic":"n","data":%d}`, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	writers.Wait()
	select {
	case err := <-errs:
		t.Fatalf("write: %v", err)
	default:
	}
	waitUntil(t, 30*time.Second, "every client message", func() bool { return total.Load() == sessions*orderCount })
	for _, c := range conns {
		c.CloseNow()
	}
	for range sessions {
		if n := recv(t, closed, "OnClose"); n != orderCount {
			t.Errorf("OnClose saw %d messages delivered, want every one (%d) before it", n, orderCount)
		}
	}
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("OnMessage ran concurrently with itself for one session %d times", n)
	}
	if n := afterClose.Load(); n != 0 {
		t.Fatalf("OnClose ran while OnMessage was running (%d)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for s, st := range states {
		for i, n := range st.seq {
			if n != i {
				t.Fatalf("session %s: message %d carried %d", s.ID(), i, n)
			}
		}
	}
}
