package wsfleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/internal/uring"
	"github.com/livepoll/livepoll/live"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// echoServer is a live server that sends every message's data back under topic "echo",
// and closes the session when told "bye".
func echoServer(t *testing.T, opts live.Options) (*live.Server, string) {
	t.Helper()
	opts.OnMessage = func(ctx context.Context, s *live.Session, topic string, data []byte) {
		if topic == "bye" {
			s.Close()
			return
		}
		_ = s.Send(live.Message{Topic: "echo", Data: data})
	}
	srv := live.New(opts)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/"
}

// fleet runs two loops and records what they see.
type fleet struct {
	loops   []*Loop
	running sync.WaitGroup
	mu      sync.Mutex
	msgs    map[int][]string
	closes  map[int]error
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{msgs: map[int][]string{}, closes: map[int]error{}}
	for range 2 {
		l, err := NewLoop(1<<16, func(c *Conn, p []byte) {
			f.mu.Lock()
			f.msgs[c.ID] = append(f.msgs[c.ID], string(p))
			f.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		l.OnClose = func(c *Conn, err error) {
			f.mu.Lock()
			f.closes[c.ID] = err
			f.mu.Unlock()
		}
		l.CloseTimeout = 500 * time.Millisecond
		f.loops = append(f.loops, l)
		f.running.Go(l.Run)
	}
	t.Cleanup(func() {
		for _, l := range f.loops {
			l.Stop()
		}
		f.running.Wait()
		for _, l := range f.loops {
			l.CloseAll()
		}
	})
	return f
}

func (f *fleet) dial(t *testing.T, url string, n int) []*Conn {
	t.Helper()
	conns := make([]*Conn, n)
	err := DialMany(context.Background(), DialSpec{
		URL: url, From: 0, To: n, Concurrency: 8, Rate: 2000,
		First: func(i int) []byte { return []byte(`{"topic":"hello","data":"first"}`) },
		Opened: func(d Dialed) error {
			c := &Conn{FD: d.FD, ID: d.Index}
			conns[d.Index] = c
			return f.loops[d.Index%2].Add(c, d.Leftover)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return conns
}

func (f *fleet) closeErr(id int) (error, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, ok := f.closes[id]
	return err, ok
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoopReadsMessagesAndAnswersPings(t *testing.T) {
	t.Parallel()
	// The server pings a session silent for 1 s and drops it after 2 s without a pong.
	_, url := echoServer(t, live.Options{PingInterval: time.Second, IdleTimeout: 2 * time.Second})
	f := newFleet(t)
	conns := f.dial(t, url, 20)
	waitFor(t, "the first messages echoed", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i := range conns {
			if len(f.msgs[i]) != 1 || f.msgs[i][0] != `{"topic":"echo","data":"first"}` {
				return false
			}
		}
		return true
	})
	for _, c := range conns {
		if err := c.Write(AppendClientFrame(nil, ws.OpText, []byte(`{"topic":"x","data":2}`)), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the second messages echoed", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i := range conns {
			if len(f.msgs[i]) != 2 {
				return false
			}
		}
		return true
	})
	time.Sleep(3500 * time.Millisecond) // past IdleTimeout: only pongs keep them open
	for _, c := range conns {
		if c.Closed() {
			err, _ := f.closeErr(c.ID)
			t.Fatalf("conn %d closed while idle (pings unanswered?): %v", c.ID, err)
		}
	}
}

func TestLoopCloses(t *testing.T) {
	t.Parallel()
	srv, url := echoServer(t, live.Options{})
	f := newFleet(t)
	conns := f.dial(t, url, 4)

	// 0: this side's closing handshake completes: OnClose gets nil.
	f.loops[0].Shutdown(conns[0])
	// 1: the server closes the session (close frame 1000 from Session.Close).
	if err := conns[1].Write(AppendClientFrame(nil, ws.OpText, []byte(`{"topic":"bye"}`)), time.Second); err != nil {
		t.Fatal(err)
	}
	// 2: killed: no handshake, OnClose gets the given error.
	errKilled := errors.New("killed")
	f.loops[0].Kill(conns[2], errKilled)
	waitFor(t, "three closes", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.closes) == 3
	})
	if err, _ := f.closeErr(0); err != nil {
		t.Errorf("shutdown: OnClose got %v, want nil", err)
	}
	var ce *CloseError
	if err, _ := f.closeErr(1); !errors.As(err, &ce) || ce.Code != 1000 {
		t.Errorf("server close: OnClose got %v, want a CloseError with code 1000", err)
	}
	if err, _ := f.closeErr(2); err != errKilled {
		t.Errorf("kill: OnClose got %v", err)
	}
	// 3: the server shuts down: close frame 1001.
	srv.Close()
	waitFor(t, "the server's close", func() bool { _, ok := f.closeErr(3); return ok })
	if err, _ := f.closeErr(3); !errors.As(err, &ce) || ce.Code != 1001 {
		t.Errorf("server shutdown: OnClose got %v, want a CloseError with code 1001", err)
	}
	if got := f.loops[0].Closed.Load() + f.loops[1].Closed.Load(); got != 3 {
		t.Errorf("Closed counts %d connections, want 3 (all but the handshake this side started)", got)
	}
	for i, want := range []string{"", "close_1000", "other", "close_1001"} {
		if got := Reason(conns[i].Err()); got != want {
			t.Errorf("conn %d: Reason(Err()) = %q (%v), want %q", i, got, conns[i].Err(), want)
		}
	}
	for i, c := range conns {
		if !c.Closed() {
			t.Errorf("conn %d not closed", i)
		}
		if err := c.Write([]byte{0x81, 0x80, 0, 0, 0, 0}, time.Second); err != ErrClosed {
			t.Errorf("conn %d: write after close: %v, want ErrClosed", i, err)
		}
	}
}

func TestLoopShutdownTimesOut(t *testing.T) {
	t.Parallel()
	// A server that completes the handshake and then never reads.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	var accepting sync.WaitGroup
	accepting.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := ws.Upgrade(c); err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		accepting.Wait()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	f := newFleet(t)
	conns := f.dial(t, "ws://"+ln.Addr().String()+"/", 1)
	start := time.Now()
	f.loops[0].Shutdown(conns[0])
	waitFor(t, "the close timeout", conns[0].Closed)
	if err, _ := f.closeErr(0); err != ErrCloseTimeout {
		t.Errorf("OnClose got %v, want ErrCloseTimeout", err)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("closed after %v, before CloseTimeout", took)
	}
}

func TestLoopDoRunsOnTheLoopAndAfterRun(t *testing.T) {
	t.Parallel()
	l, err := NewLoop(1024, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	var running sync.WaitGroup
	l.Post(func() { ran.Add(1) }) // before Run: runs when it starts
	running.Go(l.Run)
	l.Do(func() { ran.Add(1) })
	l.Stop()
	running.Wait()
	l.Do(func() { ran.Add(1) }) // after Run: runs at once
	l.CloseAll()
	if ran.Load() != 3 {
		t.Errorf("%d of 3 tasks ran", ran.Load())
	}
}

func TestDialManyReportsFailuresAndGoesOn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var mu sync.Mutex
	var failed []error
	err = DialMany(context.Background(), DialSpec{
		URL: "ws://" + addr + "/", From: 0, To: 5, Concurrency: 2, Attempts: 1,
		Opened: func(d Dialed) error { syscall.Close(d.FD); return errors.New("unexpected success") },
		Failed: func(i int, err error) {
			mu.Lock()
			failed = append(failed, err)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 5 {
		t.Fatalf("%d failures reported, want 5", len(failed))
	}
	for _, err := range failed {
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("failure %v, want ECONNREFUSED", err)
		}
	}
}

func TestLoopbackSources(t *testing.T) {
	got := LoopbackSources(300)
	if got[0].String() != "127.0.0.2" || got[253].String() != "127.0.0.255" || got[254].String() != "127.0.1.0" {
		t.Errorf("sources %v %v %v", got[0], got[253], got[254])
	}
}

// With DialSpec.Deflate the fleet offers permessage-deflate: a server that compresses
// accepts it and its large replies arrive with RSV1; a server that does not leaves the
// connection plain, and so does a fleet that does not offer.
func TestDeflateOffer(t *testing.T) {
	t.Parallel()
	big := `{"topic":"x","data":"` + strings.Repeat("quote bid 101.25 ask 101.50; ", 70) + `"}`
	for _, tc := range []struct {
		name                 string
		serverCompresses     bool
		offer, wantNegotiate bool
	}{
		{"offered and accepted", true, true, true},
		{"offered, server without compression", false, true, false},
		{"not offered", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, url := echoServer(t, live.Options{Compression: tc.serverCompresses})
			var replies, compressed atomic.Int64
			l, err := NewFrameLoop(1<<16, func(c *Conn, f Frame) {
				if len(f.Payload) > 1000 || f.RSV1 {
					replies.Add(1)
				}
				if f.RSV1 {
					compressed.Add(1)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			var running sync.WaitGroup
			running.Go(l.Run)
			defer func() {
				l.Stop()
				running.Wait()
				l.CloseAll()
			}()
			const n = 4
			var negotiated atomic.Int64
			err = DialMany(context.Background(), DialSpec{
				URL: url, From: 0, To: n, Concurrency: 2, Deflate: tc.offer,
				First: func(int) []byte { return []byte(big) },
				Opened: func(d Dialed) error {
					if d.Deflate {
						negotiated.Add(1)
					}
					return l.Add(&Conn{FD: d.FD, ID: d.Index}, d.Leftover)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the replies", func() bool { return replies.Load() == n })
			want := int64(0)
			if tc.wantNegotiate {
				want = n
			}
			if negotiated.Load() != want || compressed.Load() != want {
				t.Errorf("negotiated %d, compressed replies %d; want %d each", negotiated.Load(), compressed.Load(), want)
			}
		})
	}
}

// Many sockets ready at once are read in batches through io_uring where it works, and
// with read(2) otherwise (WSFLEET_URING=0): either way every connection gets exactly its
// own messages, including ones larger than a batch slot (the rest comes in later rounds).
func TestBatchedReads(t *testing.T) {
	for _, ring := range []bool{true, false} {
		name := map[bool]string{true: "uring", false: "read"}[ring]
		t.Run(name, func(t *testing.T) {
			if ring && openRingOrNil() == nil {
				t.Skip("io_uring unavailable here: loops read with read(2)")
			}
			defer func(old bool) { useRing = old }(useRing)
			useRing = ring
			_, url := echoServer(t, live.Options{})
			f := newFleet(t)
			const n = 300
			conns := f.dial(t, url, n)
			big := func(i int) string { return fmt.Sprintf("%d-%s", i, strings.Repeat("x", batchSlot+1000*(i%7))) }
			for _, c := range conns {
				msg := fmt.Sprintf(`{"topic":"x","data":%q}`, big(c.ID))
				if err := c.Write(AppendClientFrame(nil, ws.OpText, []byte(msg)), 5*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "every echo", func() bool {
				f.mu.Lock()
				defer f.mu.Unlock()
				for i := range conns {
					if len(f.msgs[i]) < 2 {
						return false
					}
				}
				return true
			})
			f.mu.Lock()
			defer f.mu.Unlock()
			for i := range conns {
				want := fmt.Sprintf(`{"topic":"echo","data":%q}`, big(i))
				if len(f.msgs[i]) != 2 || f.msgs[i][1] != want {
					t.Fatalf("conn %d got %d messages, the second %d bytes, want %d", i, len(f.msgs[i]), len(f.msgs[i][len(f.msgs[i])-1]), len(want))
				}
			}
			var batched int64
			for _, l := range f.loops {
				batched += l.Batched.Load()
			}
			if ring && batched == 0 || !ring && batched != 0 {
				t.Fatalf("%d receives went through io_uring with useRing %v", batched, ring)
			}
			t.Logf("%d receives through io_uring", batched)
		})
	}
}

// openRingOrNil tells whether this machine gives loops a ring (and closes it).
func openRingOrNil() *uring.Ring {
	r := openRing()
	if r != nil {
		r.Close()
	}
	return r
}
