package live

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/internal/uring"
)

// ringSessions connects readers gorilla clients and one raw client that does not read
// (a 64 KiB receive buffer), and returns their sessions (the non-reader's last).
func ringSessions(t *testing.T, readers int) (*Server, []*websocket.Conn, *rawClient, []*Session) {
	t.Helper()
	var mu sync.Mutex
	byID := map[string]*Session{}
	srv, url := testServer(t, Options{QueueSize: 1024, QueueBytes: 64 << 20, OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
		mu.Lock()
		byID[string(data)] = s
		mu.Unlock()
	}})
	conns := make([]*websocket.Conn, readers)
	for i := range conns {
		conns[i] = dial(t, url)
		if err := conns[i].WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"topic":"id","data":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	slow, err := dialIdle(url, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	if _, err := slow.Write(buildFrame(0x80|byte(ws.OpText), fmt.Appendf(nil, `{"topic":"id","data":%d}`, readers), true)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitTimeout, "every session said hello", func() bool { mu.Lock(); defer mu.Unlock(); return len(byID) == readers+1 })
	sessions := make([]*Session, readers+1)
	for i := range sessions {
		sessions[i] = byID[fmt.Sprint(i)]
	}
	return srv, conns, slow, sessions
}

func newTestRing(t *testing.T) *uring.Ring {
	t.Helper()
	r, err := uring.New(fanoutBatch)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err) // listed with its reason by .ci/test
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// One ring batch writes every reader's queue, leaves a full socket's rest queued (EAGAIN,
// no waiting), and the poller's writable edges deliver that rest in order later. The same
// holds for the writev path.
func TestFlushRingWritesQueuesAndLeavesFullSocketsQueued(t *testing.T) {
	t.Run("ring", func(t *testing.T) { flushLeavesFullSocketsQueued(t, newTestRing(t)) })
	t.Run("writev", func(t *testing.T) { flushLeavesFullSocketsQueued(t, nil) })
}

func flushLeavesFullSocketsQueued(t *testing.T, r *uring.Ring) {
	srv, conns, slow, sessions := ringSessions(t, 2)
	var want bytes.Buffer
	for i, s := range sessions[:2] {
		for n := range 5 {
			f := newFrame(ws.OpText, fmt.Appendf(nil, "r%d-%d", i, n))
			s.enqueue(f)
			f.Release()
		}
	}
	big := bytes.Repeat([]byte("x"), 64<<10)
	for n := range 128 { // 8 MiB (under QueueBytes): far more than the socket takes
		big[0] = byte(n)
		f := newFrame(ws.OpBinary, big)
		want.Write(f.B)
		sessions[2].enqueue(f)
		f.Release()
	}
	b := &flushBatch{srv: srv, n: 3}
	copy(b.sessions[:], sessions)
	if r == nil {
		for _, s := range sessions {
			s.flush()
		}
	} else if failed := b.flushRing(r); failed {
		t.Fatal("the ring failed")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		for n := range 5 {
			_, p, err := c.ReadMessage()
			if err != nil || string(p) != fmt.Sprintf("r%d-%d", i, n) {
				t.Fatalf("reader %d message %d: %q, %v", i, n, p, err)
			}
		}
	}
	s := sessions[2]
	s.wmu.Lock()
	left := len(s.q)
	s.wmu.Unlock()
	if left == 0 {
		t.Fatal("8 MiB all went into a socket with a 64 KiB receive buffer: the test did not reach EAGAIN")
	}
	got := make([]byte, want.Len())
	slow.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := io.ReadFull(slow.br, got); err != nil {
		s.wmu.Lock()
		left, st := len(s.q), s.state.Load()
		s.wmu.Unlock()
		t.Fatalf("the non-reader's rest did not arrive once it read: %d of %d bytes: %v (queue %d, state %d, closed %+v)", n, len(got), err, left, st, srv.Stats().Closed)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the non-reader's bytes are not its frames in order")
	}
}

// A session whose write lock is held is skipped by the ring and flushed after it, with no
// lock of the batch held: the others' writes do not wait for it.
func TestFlushRingSkipsBusySessions(t *testing.T) {
	r := newTestRing(t)
	srv, conns, _, sessions := ringSessions(t, 2)
	for i, s := range sessions[:2] {
		f := newFrame(ws.OpText, fmt.Appendf(nil, "m%d", i))
		s.enqueue(f)
		f.Release()
	}
	busy := sessions[0]
	busy.wmu.Lock()
	b := &flushBatch{srv: srv, n: 2}
	copy(b.sessions[:], sessions[:2])
	done := make(chan bool, 1)
	go func() { done <- b.flushRing(r) }()
	conns[1].SetReadDeadline(time.Now().Add(waitTimeout))
	if _, p, err := conns[1].ReadMessage(); err != nil || string(p) != "m1" {
		busy.wmu.Unlock()
		t.Fatalf("the free session's write waited for the busy one: %q, %v", p, err)
	}
	select {
	case <-done:
		t.Fatal("the batch returned before writing the busy session")
	case <-time.After(20 * time.Millisecond):
	}
	busy.wmu.Unlock()
	select {
	case failed := <-done:
		if failed {
			t.Fatal("the ring failed")
		}
	case <-time.After(waitTimeout):
		t.Fatal("the batch did not finish once the lock was free")
	}
	conns[0].SetReadDeadline(time.Now().Add(waitTimeout))
	if _, p, err := conns[0].ReadMessage(); err != nil || string(p) != "m0" {
		t.Fatalf("the busy session's frame: %q, %v", p, err)
	}
}
