package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// helloConn records what a crypto/tls client writes and then fails its reads: the
// client's first flight, its ClientHello, without a server.
type helloConn struct {
	net.Conn
	written bytes.Buffer
}

func (c *helloConn) Write(p []byte) (int, error)      { return c.written.Write(p) }
func (c *helloConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }

func clientHello(t testing.TB, cfg *tls.Config) []byte {
	c := &helloConn{}
	tls.Client(c, cfg).Handshake()
	if c.written.Len() == 0 {
		t.Fatal("no ClientHello")
	}
	return c.written.Bytes()
}

// TestHalfOpenHandshakes: 5,000 clients send a ClientHello and nothing more. The
// Runner runs MaxHandshakes of them, queues MaxQueued as bytes, refuses the rest, and
// times them all out; goroutines and memory stay within the bounds meanwhile. It logs
// what a running and a waiting handshake cost (docs/tls.md quotes it).
func TestHalfOpenHandshakes(t *testing.T) {
	p := getPKI(t)
	const clients, running, queued = 5000, 64, 1000
	timeout := 3 * time.Second
	r, err := NewRunner(p.serverConfig(), Options{MaxHandshakes: running, MaxQueued: queued, HandshakeTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hello := clientHello(t, p.clientConfig())
	goroutines := runtime.NumGoroutine()
	mem0 := memAfterGC()
	var notified atomic.Int64
	hs := make([]*Handshake, clients)
	busy := 0
	start := time.Now()
	feed := func(from, to int) {
		for i := from; i < to; i++ {
			hs[i] = r.Start(nil, nil, func() { notified.Add(1) })
			if err := hs[i].Feed(hello); errors.Is(err, ErrBusy) {
				busy++
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	// The running ones first: each answers with its flight, then waits for the client.
	feed(0, running)
	waitFor(t, func() bool { return notified.Load() >= running })
	mem1 := memAfterGC()
	feed(running, clients)
	mem2 := memAfterGC()
	if elapsed := time.Since(start); elapsed > timeout/2 {
		t.Fatalf("starting took %v, too close to the %v timeout for the checks below", elapsed, timeout)
	}
	if want := clients - running - queued; busy != want {
		t.Errorf("%d refused, want %d", busy, want)
	}
	if st := r.Stats(); st.Running != running || st.Queued != queued {
		t.Errorf("stats %+v, want %d running, %d queued", st, running, queued)
	}
	if g := runtime.NumGoroutine() - goroutines; g > running {
		t.Errorf("%d more goroutines, want at most %d", g, running)
	}
	perRunning := float64(mem1-mem0) / running
	perOther := float64(mem2-mem1) / (clients - running)
	t.Logf("ClientHello %d B; heap+stacks per running handshake %.0f B, per queued or refused one %.0f B (%d queued, %d refused)",
		len(hello), perRunning, perOther, queued, busy)
	// A waiting or refused handshake holds at most its ClientHello and its state.
	if limit := float64(len(hello) + 2048); perOther > limit {
		t.Errorf("%.0f B per waiting or refused handshake, more than %.0f", perOther, limit)
	}
	// All end by the timeout; the running ones' goroutines go.
	deadline := time.Now().Add(timeout + 5*time.Second)
	for {
		st := r.Stats()
		if st.Running == 0 && st.Queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %+v after the timeout", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	timedOut := 0
	for _, h := range hs {
		if !h.Done() {
			t.Fatal("a handshake is not done")
		}
		_, _, err := h.Result()
		switch {
		case errors.Is(err, ErrHandshakeTimeout):
			timedOut++
		case errors.Is(err, ErrBusy):
		default:
			t.Fatalf("handshake ended with %v", err)
		}
	}
	if timedOut != running+queued {
		t.Errorf("%d timed out, want %d", timedOut, running+queued)
	}
	// Every handshake that ran or waited was told that it ended; a refused one was
	// told by Feed's error.
	if n := notified.Load(); n < int64(running+queued) {
		t.Errorf("notify called %d times, want at least %d", n, running+queued)
	}
}

// TestQueuedHandshakeRuns: with one slot taken by a stalled client, the next client's
// handshake waits as bytes and runs once the slot frees.
func TestQueuedHandshakeRuns(t *testing.T) {
	p := getPKI(t)
	timeout := 1500 * time.Millisecond
	h := newHarness(t, p.serverConfig(), Options{MaxHandshakes: 1, HandshakeTimeout: timeout}, 4096)
	stalled, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := stalled.Write(clientHello(t, p.clientConfig())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return h.r.Stats().Running == 1 })
	start := time.Now()
	time.Sleep(timeout / 3)
	c := dial(t, h, p.clientConfig()) // waits for the slot
	waited := time.Since(start)
	roundTrip(t, c, []byte("served after the wait"))
	c.Close()
	// The two results come in either order.
	first, second := h.next(), h.next()
	if first.conn != nil {
		first, second = second, first
	}
	if !errors.Is(first.err, ErrHandshakeTimeout) || second.err != io.EOF {
		t.Fatalf("stalled client: %v; queued client: %v", first.err, second.err)
	}
	if waited < timeout/2 {
		t.Fatalf("the second handshake finished after %v, before the first slot was free", waited)
	}
}

// TestRunnerClose aborts queued and running handshakes and waits for their goroutines.
func TestRunnerClose(t *testing.T) {
	p := getPKI(t)
	r, err := NewRunner(p.serverConfig(), Options{MaxHandshakes: 2})
	if err != nil {
		t.Fatal(err)
	}
	hello := clientHello(t, p.clientConfig())
	var hs []*Handshake
	for i := 0; i < 5; i++ {
		h := r.Start(nil, nil, func() {})
		if err := h.Feed(hello); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	r.Close()
	for _, h := range hs {
		if _, _, err := h.Result(); !errors.Is(err, ErrAborted) {
			t.Fatalf("after Close: %v", err)
		}
	}
	if h := r.Start(nil, nil, func() {}); !errors.Is(h.Feed(hello), ErrAborted) {
		t.Fatal("a closed Runner took a handshake")
	}
}

// TestHandshakeInputBound: a client that floods the handshake is cut off.
func TestHandshakeInputBound(t *testing.T) {
	p := getPKI(t)
	// The bound must take a whole ClientHello (over 1 KiB with a post-quantum key share)
	// so that the blocker below gets its slot.
	r, err := NewRunner(p.serverConfig(), Options{MaxHandshakeInput: 4096, MaxHandshakes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	blocker := r.Start(nil, nil, func() {}) // takes the only slot, so nothing is consumed
	if err := blocker.Feed(clientHello(t, p.clientConfig())); err != nil {
		t.Fatal(err)
	}
	defer blocker.Abort()
	// Only once the blocker has answered its ClientHello is it surely on the slot (and
	// waiting for the client's next flight); before, h could get there first.
	var answered []byte
	waitFor(t, func() bool { answered = blocker.Output(answered); return len(answered) > 0 || blocker.Done() })
	if blocker.Done() {
		_, _, err := blocker.Result()
		t.Fatalf("the blocking handshake ended: %v", err)
	}
	h := r.Start(nil, nil, func() {})
	if err := h.Feed(make([]byte, 4000)); err != nil {
		t.Fatal(err)
	}
	if err := h.Feed(make([]byte, 100)); !errors.Is(err, ErrHandshakeInput) {
		t.Fatalf("Feed past the bound: %v", err)
	}
}

// memAfterGC is the heap and the goroutine stacks in use, after a collection.
func memAfterGC() int64 {
	heapAfterGC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestManyClients: more clients at once than handshake slots, all served through the
// queue, each echoing over its own Conn.
func TestManyClients(t *testing.T) {
	p := getPKI(t)
	clients := 200
	if raceEnabled || testing.Short() {
		clients = 50
	}
	h := newHarness(t, p.serverConfig(), Options{MaxHandshakes: 4}, 4096)
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		go func() {
			nc, err := net.DialTimeout("tcp", h.addr(), 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			c := tls.Client(nc, p.clientConfig())
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			msg := []byte("many at once")
			if _, err := c.Write(msg); err != nil {
				errs <- err
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("echo %q: %v", got, err)
				return
			}
			errs <- nil
		}()
	}
	for i := 0; i < clients; i++ {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d clients not done within 30 s", clients-i, clients)
		}
	}
	for i := 0; i < clients; i++ {
		if res := h.next(); res.err != io.EOF {
			t.Errorf("server: %v", res.err)
		}
	}
}
