package live

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/poller"
)

// Issue 10's behaviours: outgoing memory bounded in bytes, fair turns, rate limits, no lock
// across a system call on a shared path, reconnect storms.

func echoOpts() Options {
	return Options{OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		s.Send(Message{Topic: topic, Data: data})
	}}
}

// echoFrame is a client text frame carrying an echo request whose data is a string of size
// bytes starting with the request's number.
func echoFrame(i, size int) []byte {
	data := fmt.Sprintf(`"%08d%s"`, i, strings.Repeat("x", max(0, size-8)))
	return clientFrame(opText, []byte(`{"topic":"echo","data":`+data+`}`))
}

// flood has rc stream echo requests of size bytes and read (and drop) the answers until
// stop is closed; the returned channel is closed when it has stopped.
func flood(rc *rawClient, size int, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		frames := slices.Concat(echoFrame(0, size), echoFrame(1, size))
		for rc.writeWhole(frames, stop) {
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rc.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := rc.Conn.Read(buf); err != nil && !isTimeout(err) {
				return
			}
		}
	}()
	go func() { wg.Wait(); close(done) }()
	return done
}

// writeWhole writes all of wire, however long TCP holds the client back: a write that
// times out is resumed where it stopped, so the stream stays valid WebSocket. It reports
// false, having perhaps written part of wire, once stop is closed or the connection fails.
func (rc *rawClient) writeWhole(wire []byte, stop <-chan struct{}) bool {
	for len(wire) > 0 {
		select {
		case <-stop:
			return false
		default:
		}
		rc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := rc.Write(wire)
		if err != nil && !isTimeout(err) {
			return false
		}
		wire = wire[n:]
	}
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// echoRoundTrips has a new well-behaved client do n echo round trips and returns their
// times, sorted.
func echoRoundTrips(t *testing.T, url string, n int) []time.Duration {
	t.Helper()
	c := dial(t, url)
	defer c.Close()
	return roundTrips(t, c, n)
}

// roundTrips has c do n echo round trips and returns their times, sorted.
func roundTrips(t testing.TB, c *websocket.Conn, n int) []time.Duration {
	t.Helper()
	lat := make([]time.Duration, 0, n)
	for i := range n {
		msg := fmt.Sprintf(`{"topic":"rtt","data":%d}`, i)
		start := time.Now()
		send(t, c, msg)
		if _, got := readMsg(t, c); got != msg {
			t.Fatalf("echo %s, want %s", got, msg)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat
}

// TestFairTurnsWithOneWorker: with a single worker and four clients that keep their sockets
// full of 64 KiB echo requests, a well-behaved client is still answered. A session that
// ran until its socket was empty would keep the worker for as long as its client streams.
func TestFairTurnsWithOneWorker(t *testing.T) {
	t.Parallel()
	opts := echoOpts()
	opts.MaxWorkers = 1
	srv, url := testServer(t, opts)
	stop := make(chan struct{})
	var dones []<-chan struct{}
	for range 4 {
		rc, err := dialIdle(url, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		dones = append(dones, flood(rc, 64<<10, stop))
	}
	waitUntil(t, 2*waitTimeout, "the flood to be read", func() bool { return srv.Stats().MessagesIn > 20 })
	lat := echoRoundTrips(t, url, 20)
	close(stop)
	for _, d := range dones {
		recv(t, d, "a flooder to stop")
	}
	t.Logf("healthy echo beside 4 flooders on one worker: median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
}

// TestFloodsDoNotGrowThePool: sixteen flooders on the default pool keep it near its eager
// size: turns end, so the pool sees progress and does not take them for blocked handlers.
func TestFloodsDoNotGrowThePool(t *testing.T) {
	t.Parallel()
	srv, url := testServer(t, echoOpts())
	stop := make(chan struct{})
	var dones []<-chan struct{}
	for range 16 {
		rc, err := dialIdle(url, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		dones = append(dones, flood(rc, 64<<10, stop))
	}
	peak := 0
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		peak = max(peak, srv.eng.pool.Workers())
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	for _, d := range dones {
		recv(t, d, "a flooder to stop")
	}
	// The eager size is 4 per CPU; a turn that outlasts the pool's 1 ms stall check (the
	// race detector slows them tenfold) may add a few.
	if limit := 16 * runtime.GOMAXPROCS(0); peak > limit {
		t.Fatalf("the pool grew to %d workers under 16 flooders (limit %d)", peak, limit)
	}
	t.Logf("pool peak: %d workers", peak)
}

// TestNonReaderIsHeldBackWithinItsBytes: a client sends 1 MiB messages that the
// application answers and never reads the answers. The server stops reading it once its
// queue passes half of QueueBytes, so it holds at most QueueBytes plus one answer however
// long the client goes on; when the client reads again, every request it got through is
// answered, in order.
func TestNonReaderIsHeldBackWithinItsBytes(t *testing.T) {
	t.Parallel()
	srv, url := testServer(t, echoOpts())
	// The default receive buffer: a tiny one makes loopback TCP stall on its persist
	// timer (a window below the 64 KiB MSS), which would be the kernel's delay, not ours.
	rc, err := dialIdle(url, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	const size = 1 << 20
	stop := make(chan struct{})
	complete := make(chan int, 1)
	go func() {
		n := 0
		defer func() { complete <- n }()
		for ; n < 200; n++ { // 200 MiB if nothing held it back
			if !rc.writeWhole(echoFrame(n, size), stop) {
				return
			}
		}
	}()
	waitUntil(t, 2*waitTimeout, "reading to pause", func() bool { return srv.Stats().OutputPauses > 0 })
	in := srv.Stats().BytesIn
	time.Sleep(500 * time.Millisecond)
	if grew := srv.Stats().BytesIn - in; grew > readBufSize*turnReads {
		t.Fatalf("the server read %d bytes from a client it had paused", grew)
	}
	s := onlySession(t, srv)
	s.wmu.Lock()
	queued, frames := int(s.qbytes), len(s.q)
	s.wmu.Unlock()
	bound := srv.opts.QueueBytes + 2*size + 4096 // one answer's buffer beyond the bound
	if queued > bound || s.IsClosed() {
		t.Fatalf("queue holds %d bytes in %d frames (bound %d), closed = %v", queued, frames, bound, s.IsClosed())
	}
	close(stop)
	full := recv(t, complete, "the writer to stop")
	if full >= 200 {
		t.Fatal("the server read 200 MiB from a client that never reads its answers")
	}
	t.Logf("held back after %d MiB; queue %d bytes in %d frames", full, queued, frames)
	for i := range full {
		p := rc.mustFrame(t, opText)
		if want := fmt.Sprintf(`{"topic":"echo","data":"%08d`, i); !strings.HasPrefix(string(p), want) {
			t.Fatalf("answer %d starts %.40q, want %q", i, p, want)
		}
	}
}

func onlySession(t *testing.T, srv *Server) *Session {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(srv.sessions))
	}
	for s := range srv.sessions {
		return s
	}
	return nil
}

// countingOpts counts the messages handled and echoes the health checks.
func countingOpts(n *atomic.Int64) Options {
	return Options{OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		if topic == "health" {
			s.Send(Message{Topic: topic, Data: data})
			return
		}
		n.Add(1)
	}}
}

// TestMessageRatePauses: a client over MessageRate is not read until its bucket refills;
// nothing it sent is lost.
func TestMessageRatePauses(t *testing.T) {
	t.Parallel()
	var handled atomic.Int64
	opts := countingOpts(&handled)
	opts.MessageRate, opts.MessageBurst = 50, 5
	srv, url := testServer(t, opts)
	rc, err := dialIdle(url, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	const n = 60
	var wire []byte
	for i := range n {
		wire = append(wire, echoFrame(i, 10)...)
	}
	start := time.Now()
	rc.write(t, wire)
	time.Sleep(200 * time.Millisecond)
	// The burst, 50/s for the time passed, and one frame over: at most 5 + 10 + 1, with
	// room for a slow start of the test.
	early, elapsed := handled.Load(), time.Since(start)
	if allowed := 5 + int64(elapsed.Seconds()*50) + 2; early > allowed {
		t.Fatalf("%d messages handled after %v, the limit allows %d", early, elapsed, allowed)
	}
	waitUntil(t, waitTimeout, "every message", func() bool { return handled.Load() == n })
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("%d messages at 50/s with a burst of 5 took only %v", n, took)
	}
	if srv.Stats().RateLimited == 0 {
		t.Fatal("Stats.RateLimited = 0")
	}
	checkHealthy(t, url)
}

// TestByteRatePauses: the same for ByteRate.
func TestByteRatePauses(t *testing.T) {
	t.Parallel()
	var handled atomic.Int64
	opts := countingOpts(&handled)
	opts.ByteRate, opts.ByteBurst = 200<<10, 64<<10 // 200 KiB/s
	_, url := testServer(t, opts)
	rc, err := dialIdle(url, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	const n, size = 20, 20 << 10 // 400 KiB: about 1.7 s at 200 KiB/s after the burst
	var wire []byte
	for i := range n {
		wire = append(wire, echoFrame(i, size)...)
	}
	start := time.Now()
	go rc.Write(wire) // the server holds it back: the write may not finish at once
	waitUntil(t, 3*waitTimeout, "every message", func() bool { return handled.Load() == n })
	if took := time.Since(start); took < time.Second {
		t.Fatalf("400 KiB at 200 KiB/s with a 64 KiB burst took only %v", took)
	}
}

// TestRateLimitClose: under RateLimitClose a client over its rate is closed with 1008.
func TestRateLimitClose(t *testing.T) {
	t.Parallel()
	var handled atomic.Int64
	closes := newCloseLog(t)
	opts := countingOpts(&handled)
	opts.MessageRate, opts.MessageBurst, opts.RateLimitClose = 10, 3, true
	opts.OnClose = closes.OnClose
	srv, url := testServer(t, opts)
	rc, err := dialIdle(url, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var wire []byte
	for i := range 20 {
		wire = append(wire, echoFrame(i, 10)...)
	}
	rc.write(t, wire)
	if got := rc.outcome(); got != "close 1008" {
		t.Fatalf("outcome %q, want close 1008", got)
	}
	if ev := closes.next(t); !errors.Is(ev.err, ErrRateLimited) {
		t.Fatalf("OnClose err = %v, want ErrRateLimited", ev.err)
	}
	if h := handled.Load(); h > 4 {
		t.Fatalf("%d messages handled, burst is 3", h)
	}
	st := srv.Stats()
	if st.Closed.RateLimited != 1 || st.RateLimited != 1 {
		t.Fatalf("Stats.Closed.RateLimited = %d, RateLimited = %d, want 1, 1", st.Closed.RateLimited, st.RateLimited)
	}
}

// TestMaxUpgradeRate: upgrades over the cap get 503 with Retry-After before any hijack.
func TestMaxUpgradeRate(t *testing.T) {
	t.Parallel()
	opts := echoOpts()
	opts.MaxUpgradeRate, opts.UpgradeBurst = 1, 2
	srv, url := testServer(t, opts)
	ok, refused := 0, 0
	for range 5 {
		_, resp, err := dialHeader(t, url, nil)
		switch {
		case err == nil:
			ok++
		case resp != nil && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "1":
			refused++
		default:
			t.Fatalf("dial: %v (%v)", err, resp)
		}
	}
	// The burst of 2, and perhaps one more if the loop took a second.
	if ok < 2 || ok > 3 || ok+refused != 5 {
		t.Fatalf("%d upgrades accepted and %d refused, want 2 (or 3) and the rest", ok, refused)
	}
	if got := srv.Stats().UpgradesThrottled; got != uint64(refused) {
		t.Fatalf("Stats.UpgradesThrottled = %d, want %d", got, refused)
	}
}

// TestShutdownWindowSpreadsCloses: with ShutdownWindow, Shutdown's closes are spread over
// the window (with ShutdownCode 1012), and Shutdown returns once the last is done.
func TestShutdownWindowSpreadsCloses(t *testing.T) {
	t.Parallel()
	opts := echoOpts()
	opts.ShutdownWindow, opts.ShutdownCode = time.Second, 1012
	srv := New(opts)
	hs := newLoopbackServer(t, srv)
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	const n = 20
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dial(t, url)
	}
	type closed struct {
		code int
		at   time.Duration
	}
	got := make(chan closed, n)
	start := time.Now()
	for _, c := range conns {
		go func() {
			code := closeCode(t, c)
			got <- closed{code, time.Since(start)}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	var times []time.Duration
	for range n {
		c := recv(t, got, "a close")
		if c.code != 1012 {
			t.Fatalf("close code %d, want 1012 (closed %+v)", c.code, srv.Stats().Closed)
		}
		times = append(times, c.at)
	}
	slices.Sort(times)
	if first, last := times[0], times[n-1]; last-first < 300*time.Millisecond || last > 3*time.Second {
		t.Fatalf("closes from %v to %v: not spread over the 1 s window", first, last)
	}
}

// TestCloseCutsASpreadShutdownShort: Close during a spread Shutdown closes the rest at once.
func TestCloseCutsASpreadShutdownShort(t *testing.T) {
	t.Parallel()
	opts := echoOpts()
	opts.ShutdownWindow = time.Hour
	srv := New(opts)
	hs := newLoopbackServer(t, srv)
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	for range 5 {
		dial(t, url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an hour's window and a 200 ms ctx: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	if err := recv(t, done, "Close"); err != nil {
		t.Fatal(err)
	}
	if n := openSessions(srv); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// TestClosedSessionsLeaveTheWheel: a finished session is taken out of the keepalive
// wheel (and the throttle list) at once, not when its slot comes round.
func TestClosedSessionsLeaveTheWheel(t *testing.T) {
	t.Parallel()
	opts := echoOpts()
	opts.MessageRate, opts.MessageBurst = 1, 1
	srv, url := testServer(t, opts)
	for range 10 {
		rc, err := dialIdle(url, 0)
		if err != nil {
			t.Fatal(err)
		}
		rc.write(t, slices.Concat(echoFrame(0, 1), echoFrame(1, 1), echoFrame(2, 1))) // over the rate
		defer rc.Close()
	}
	waitUntil(t, waitTimeout, "ten sessions throttled", func() bool { return srv.Stats().RateLimited >= 10 })
	if n := srv.keep.len(); n != 10 {
		t.Fatalf("%d sessions in the wheel, want 10", n)
	}
	srv.mu.Lock()
	sessions := make([]*Session, 0, len(srv.sessions))
	for s := range srv.sessions {
		sessions = append(sessions, s)
	}
	srv.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}
	waitUntil(t, waitTimeout, "the sessions to finish", func() bool { return openSessions(srv) == 0 })
	srv.throttle.mu.Lock()
	throttled := len(srv.throttle.sessions)
	srv.throttle.mu.Unlock()
	if n := srv.keep.len(); n != 0 || throttled != 0 {
		t.Fatalf("after every session finished: %d in the wheel, %d in the throttle list", n, throttled)
	}
}

// TestPublishHoldsNoLockWhileWriting: a Publish stuck behind one subscriber's write lock
// (as behind a long write) holds no topic or shard lock: the topic's membership changes and
// other topics are published meanwhile.
func TestPublishHoldsNoLockWhileWriting(t *testing.T) {
	t.Parallel()
	joined := make(chan *Session, 4)
	var srv *Server
	srv, url := testServer(t, Options{OnMessage: func(_ context.Context, s *Session, topic string, _ []byte) {
		srv.Subscribe(s, topic)
		joined <- s
	}})
	stuck := dial(t, url)
	send(t, stuck, `{"topic":"big"}`)
	s := recv(t, joined, "join")
	other := dial(t, url)
	send(t, other, `{"topic":"small"}`)
	recv(t, joined, "join")

	s.wmu.Lock() // the Publish below waits here, as if a write to s took long
	published := make(chan struct{})
	go func() { srv.Publish("big", []byte(`1`)); close(published) }()
	time.Sleep(50 * time.Millisecond) // let it reach the lock
	done := make(chan struct{})
	go func() {
		third := dial(t, url)
		send(t, third, `{"topic":"big"}`) // subscribes while the Publish is stuck
		recv(t, joined, "join")
		srv.Publish("small", []byte(`2`))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		s.wmu.Unlock()
		t.Fatal("subscribing to the topic, or publishing another, waited for the stuck Publish")
	}
	s.wmu.Unlock()
	recv(t, published, "the stuck Publish")
	if _, got := readMsg(t, other); got != `{"topic":"small","data":2}` {
		t.Fatalf("other topic got %s", got)
	}
}

// TestPollerDoesNotWaitForTheWriteLock: the poller's goroutine never waits for a session's
// write lock; a writable event that finds it taken becomes work for the session's task.
func TestPollerDoesNotWaitForTheWriteLock(t *testing.T) {
	t.Parallel()
	srv, url := testServer(t, echoOpts())
	c := dial(t, url)
	waitUntil(t, waitTimeout, "the session", func() bool { return openSessions(srv) == 1 })
	s := onlySession(t, srv)
	s.wmu.Lock()
	returned := make(chan struct{})
	go func() {
		(*pollHandler)(s).Ready(poller.Writable)
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(waitTimeout):
		s.wmu.Unlock()
		t.Fatal("Ready waited for the session's write lock")
	}
	s.wmu.Unlock()
	send(t, c, `{"topic":"after","data":1}`)
	if _, got := readMsg(t, c); got != `{"topic":"after","data":1}` {
		t.Fatalf("echo after the event: %s", got)
	}
}
