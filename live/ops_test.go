package live

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
)

// A peer that stops answering (half-open: it neither reads nor writes) is pinged after
// PingInterval and closed with ErrTimeout once IdleTimeout has passed without a frame.
func TestKeepaliveClosesSilentPeer(t *testing.T) {
	t.Parallel()
	closes := newCloseLog(t)
	_, url := testServer(t, Options{PingInterval: time.Second, IdleTimeout: 2 * time.Second, OnClose: closes.OnClose})
	rc := rawDial(t, url, nil)
	start := time.Now()
	rc.mustFrame(t, opPing)
	payload := rc.mustFrame(t, opClose)
	if len(payload) < 2 || ws.StatusCode(uint16(payload[0])<<8|uint16(payload[1])) != ws.StatusGoingAway {
		t.Fatalf("close payload %q, want code 1001", payload)
	}
	elapsed := time.Since(start)
	if ev := closes.next(t); !errors.Is(ev.err, ErrTimeout) {
		t.Errorf("OnClose err = %v, want ErrTimeout", ev.err)
	}
	// The earliest close is IdleTimeout. The latest: the first look comes up to two
	// one-second slots after PingInterval (the ping goes out at about 2 s), the close
	// needs the ping unanswered for a second and rounds up to the next slot (about 4 s),
	// plus the sweep's own lateness under -race on a busy machine.
	if elapsed < 1500*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("closed after %v, want between IdleTimeout (2 s) and about 4 s (one-second slots)", elapsed)
	}
}

// A client that answers pings stays connected however long it says nothing else.
func TestKeepaliveKeepsAnsweringPeer(t *testing.T) {
	t.Parallel()
	closes := newCloseLog(t)
	// The tightest setting: the wheel ticks once a second, so a session may first come
	// round already past IdleTimeout; it is pinged then and kept when it answers.
	srv, url := testServer(t, Options{PingInterval: time.Second, IdleTimeout: 2 * time.Second, OnClose: closes.OnClose})
	c := dial(t, url)
	pings := 0
	c.SetPingHandler(func(p string) error {
		pings++
		return c.WriteControl(websocket.PongMessage, []byte(p), time.Now().Add(time.Second))
	})
	c.SetReadDeadline(time.Now().Add(6 * time.Second))
	_, _, err := c.ReadMessage() // reads (and answers pings) until the deadline
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read ended with %v, want the client's own deadline", err)
	}
	if pings < 2 {
		t.Fatalf("client saw %d pings in 6 s, want at least 2", pings)
	}
	if n := closes.total(); n != 0 || srv.Stats().Sessions != 1 {
		t.Fatalf("session closed (%d OnClose calls) although the client answered pings", n)
	}
}

func TestKeepaliveCanBeSwitchedOff(t *testing.T) {
	t.Parallel()
	srv, url := testServer(t, Options{PingInterval: -1, IdleTimeout: -1})
	rc := rawDial(t, url, nil)
	rc.SetReadDeadline(time.Now().Add(2500 * time.Millisecond))
	if _, err := rc.br.ReadByte(); err == nil {
		t.Fatal("server sent something to a silent client with keepalive off")
	}
	if n := srv.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions, want the silent one still open", n)
	}
}

func TestMaxSessionsRefusesWith503(t *testing.T) {
	t.Parallel()
	srv, url := testServer(t, Options{MaxSessions: 2})
	a := dial(t, url)
	dial(t, url)
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third dial: err %v, resp %v; want 503", err, resp)
	}
	if r := srv.Stats().Rejected; r != 1 {
		t.Fatalf("Stats.Rejected = %d, want 1", r)
	}
	a.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	within(t, "a session slot to free", func() bool { return srv.Stats().Sessions == 1 })
	dial(t, url) // room again
}

// Shutdown sends 1001 to everyone, waits for every OnClose, refuses new upgrades, and
// leaves no goroutine (TestMain checks) and no descriptor behind.
func TestShutdownClosesEverySessionAndReleasesEverything(t *testing.T) {
	fdsBefore := countFDs(t)
	closes := newCloseLog(t)
	srv := New(Options{OnClose: closes.OnClose})
	hs := newLoopbackServer(t, srv)
	url := "ws://" + hs.Listener.Addr().String()
	const n = 20
	clients := make([]*websocket.Conn, n)
	for i := range clients {
		clients[i] = dial(t, url)
	}
	within(t, "sessions", func() bool { return srv.Stats().Sessions == n })

	codes := make(chan int, n)
	for _, c := range clients {
		go func() {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err := c.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				codes <- ce.Code
			} else {
				codes <- -1
			}
			c.Close() // a client closes its side after the close frame
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := closes.total(); got != n {
		t.Fatalf("%d OnClose calls when Shutdown returned, want %d", got, n)
	}
	for range n {
		if ev := closes.next(t); !errors.Is(ev.err, ErrServerClosed) {
			t.Errorf("session %s: OnClose err %v, want ErrServerClosed", ev.s.ID(), ev.err)
		}
	}
	for range n {
		select {
		case code := <-codes:
			if code != 1001 {
				t.Fatalf("client saw close code %d, want 1001", code)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a client saw no close frame")
		}
	}
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Shutdown: %v %v, want 503", resp, err)
	}
	if s := srv.Stats(); s.Closed.Shutdown != n || s.Sessions != 0 {
		t.Fatalf("Stats after Shutdown: %+v", s)
	}
	hs.Close()
	if after := countFDs(t); after > fdsBefore {
		t.Fatalf("%d descriptors open after Shutdown, %d before", after, fdsBefore)
	}
	if err := srv.Close(); err != nil { // Close after Shutdown is harmless
		t.Fatal(err)
	}
}

// Close does not wait for clients that never answer the close frame.
func TestCloseDoesNotWaitForClients(t *testing.T) {
	closes := newCloseLog(t)
	srv := New(Options{OnClose: closes.OnClose})
	hs := newLoopbackServer(t, srv)
	defer hs.Close()
	for range 5 {
		rawDial(t, "ws://"+hs.Listener.Addr().String(), nil) // never reads, never closes
	}
	within(t, "sessions", func() bool { return srv.Stats().Sessions == 5 })
	start := time.Now()
	srv.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v with silent clients; it must not wait for the closing handshake", d)
	}
	if n := closes.total(); n != 5 {
		t.Fatalf("%d OnClose calls, want 5", n)
	}
}

func TestShutdownHonoursContext(t *testing.T) {
	srv := New(Options{})
	hs := newLoopbackServer(t, srv)
	defer hs.Close()
	rawDial(t, "ws://"+hs.Listener.Addr().String(), nil) // never answers the close frame
	within(t, "session", func() bool { return srv.Stats().Sessions == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the context's deadline", err)
	}
	srv.Close()
}

func TestStatsCountTraffic(t *testing.T) {
	t.Parallel()
	var srv *Server
	srv, url := testServer(t, Options{OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		srv.Subscribe(s, topic)
		srv.Publish(topic, data)
		srv.Publish(topic, []byte("{not json"))
	}})
	c := dial(t, url)
	send(t, c, `{"topic":"a","data":1}`)
	readMsg(t, c)
	send(t, c, `not an envelope`)
	send(t, c, `{"topic":"b","data":2}`)
	readMsg(t, c)
	// The message read above went out before OnMessage's second, invalid Publish.
	waitUntil(t, waitTimeout, "the second invalid publish to be counted", func() bool { return srv.Stats().PublishDropped == 2 })
	s := srv.Stats()
	if s.Sessions != 1 || s.Topics != 2 || s.Subscriptions != 2 || s.MessagesIn != 3 || s.MessagesOut != 2 ||
		s.Skipped != 1 || s.PublishDropped != 2 || s.BytesIn == 0 || s.BytesOut == 0 {
		t.Fatalf("Stats = %+v", s)
	}
}

// Serve answers like Handler: upgrades work (with a first frame sent in the same packet as
// the request), other requests get 400, and Shutdown ends Serve with ErrServerClosed.
func TestServeAcceptsUpgradesItself(t *testing.T) {
	var srv *Server
	srv = New(Options{OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		s.Send(Message{Topic: topic, Data: data})
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "ws://" + ln.Addr().String() + "/any/path"

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET through Serve: %d, want 400", resp.StatusCode)
	}
	rc := rawDial(t, url, clientFrame(opText, []byte(`{"topic":"first","data":1}`)))
	if got := string(rc.mustFrame(t, opText)); got != `{"topic":"first","data":1}` {
		t.Fatalf("echo of the first frame: %s", got)
	}
	c := dial(t, url)
	send(t, c, `{"topic":"echo","data":"hi"}`)
	if _, m := readMsg(t, c); m != `{"topic":"echo","data":"hi"}` {
		t.Fatalf("got %s", m)
	}
	go func() { // a client closes its side after the server's close frame
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
		c.Close()
	}()
	rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, served, "Serve to return"); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
}

// The wheel's one-second slots can bring a session round for the first time when it is
// already past IdleTimeout (PingInterval 1 s, IdleTimeout 2 s, silent 2.05 s): it is pinged
// then, not closed, and closed only if it is still silent pingAnswerTime later.
func TestKeepalivePingsBeforeClosingWhenSlotComesLate(t *testing.T) {
	const s = time.Second
	for _, c := range []struct {
		ping, idle, silent time.Duration
		pinged             bool
		sincePing          time.Duration
		want               keepaliveStep
	}{
		{s, 2 * s, 500 * time.Millisecond, false, 0, keepWait},
		{s, 2 * s, 1100 * time.Millisecond, false, 0, keepPing},
		{s, 2 * s, 2050 * time.Millisecond, false, 0, keepPing}, // the late slot: ask first
		{s, 2 * s, 2500 * time.Millisecond, true, 450 * time.Millisecond, keepPing},
		{s, 2 * s, 3050 * time.Millisecond, true, s, keepClose},
		{s, 2 * s, 2100 * time.Millisecond, true, 1100 * time.Millisecond, keepClose},
		{30 * s, 10 * s, 10 * s, false, 0, keepPing}, // PingInterval above IdleTimeout
		{-1, 2 * s, 2 * s, false, 0, keepClose},      // no pings: silence alone closes
		{s, -1, time.Hour, true, time.Hour, keepPing},
		{-1, -1, time.Hour, false, 0, keepWait},
	} {
		if got := keepaliveStepFor(c.ping, c.idle, c.silent, c.pinged, c.sincePing); got != c.want {
			t.Errorf("ping %v idle %v silent %v pinged %v (%v ago): step %d, want %d",
				c.ping, c.idle, c.silent, c.pinged, c.sincePing, got, c.want)
		}
	}
	// And the sweeper acts on it: the late session is pinged, not closed.
	srv := New(Options{PingInterval: s, IdleTimeout: 2 * s})
	sess := &Session{id: "late", srv: srv, fd: -1}
	now := time.Now()
	sess.lastRead.Store(now.Add(-2050 * time.Millisecond).UnixNano())
	srv.checkAlive(sess, now)
	if sess.IsClosed() || sess.pingedAt != now.UnixNano() {
		t.Fatalf("late session: closed %v, pinged at %d (want %d)", sess.IsClosed(), sess.pingedAt, now.UnixNano())
	}
}
