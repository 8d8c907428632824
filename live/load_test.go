//go:build linux

package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// 200 gorilla clients at once, each subscribing, publishing and echoing, under -race;
// every message is accounted for, per publisher in order.
func TestManyClientsSubscribePublishEcho(t *testing.T) {
	t.Parallel()
	const (
		clients = 200
		perKind = 5 // publishes and echoes per client
	)
	var srv *Server
	srv, url := testServer(t, Options{
		QueueSize: 4096,
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			switch topic {
			case "sub":
				srv.Subscribe(s, "all")
				s.Send(Message{Topic: "subscribed"})
			case "pub":
				srv.Publish("all", data)
			case "echo":
				s.Send(Message{Topic: "echo", Data: data})
			}
		},
	})
	conns := make([]*websocket.Conn, clients)
	var dials sync.WaitGroup
	dialErrs := make(chan error, clients)
	for i := range clients {
		dials.Add(1)
		go func() {
			defer dials.Done()
			d := websocket.Dialer{HandshakeTimeout: waitTimeout}
			c, _, err := d.Dial(url, nil)
			if err != nil {
				dialErrs <- err
				return
			}
			conns[i] = c
			c.SetWriteDeadline(time.Now().Add(waitTimeout))
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			if err := c.WriteMessage(websocket.TextMessage, []byte(`{"topic":"sub"}`)); err != nil {
				dialErrs <- err
				return
			}
			if _, p, err := c.ReadMessage(); err != nil || string(p) != `{"topic":"subscribed"}` {
				dialErrs <- fmt.Errorf("subscribe: %q %v", p, err)
			}
		}()
	}
	dials.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	select {
	case err := <-dialErrs:
		t.Fatalf("client setup: %v", err)
	default:
	}

	type result struct {
		client int
		err    error
	}
	results := make(chan result, clients)
	var delivered atomic.Int64
	for i, c := range conns {
		go func() { // reader
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			next := make([]int, clients) // next n expected from each publisher
			echoes := 0
			for got := 0; got < clients*perKind || echoes < perKind; {
				_, p, err := c.ReadMessage()
				if err != nil {
					results <- result{i, fmt.Errorf("after %d published and %d echoes: %w", got, echoes, err)}
					return
				}
				var m struct {
					Topic string
					Data  struct{ From, N int }
				}
				if err := json.Unmarshal(p, &m); err != nil {
					results <- result{i, fmt.Errorf("bad message %s", p)}
					return
				}
				switch m.Topic {
				case "all":
					if m.Data.N != next[m.Data.From] {
						results <- result{i, fmt.Errorf("from %d: got n=%d, want %d", m.Data.From, m.Data.N, next[m.Data.From])}
						return
					}
					next[m.Data.From]++
					got++
					delivered.Add(1)
				case "echo":
					if m.Data.From != i || m.Data.N != echoes {
						results <- result{i, fmt.Errorf("echo %s, want from %d n %d", p, i, echoes)}
						return
					}
					echoes++
				default:
					results <- result{i, fmt.Errorf("unexpected %s", p)}
					return
				}
			}
			results <- result{i, nil}
		}()
		go func() { // writer
			c.SetWriteDeadline(time.Now().Add(60 * time.Second))
			for n := range perKind {
				for _, kind := range []string{"pub", "echo"} {
					msg := fmt.Sprintf(`{"topic":%q,"data":{"from":%d,"n":%d}}`, kind, i, n)
					if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
						results <- result{i, fmt.Errorf("write: %w", err)}
						return
					}
				}
			}
		}()
	}
	for range clients {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("client %d: %v", r.client, r.err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("timed out; %d of %d published messages delivered", delivered.Load(), clients*clients*perKind)
		}
	}
	if n := delivered.Load(); n != clients*clients*perKind {
		t.Fatalf("%d published messages delivered, want %d", n, clients*clients*perKind)
	}
}

// Idle connections cost no goroutine and one descriptor each on the server side. Not
// parallel: it counts the whole process's goroutines and descriptors.
func TestIdleConnectionsCostNoGoroutinesAndOneFD(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors through /proc/self/fd, which only Linux has")
	}
	srv, url := testServer(t, Options{})
	var clients []*rawClient
	t.Cleanup(func() {
		for _, rc := range clients {
			rc.Close()
		}
	})
	open := func(n int) {
		for range n {
			rc, err := dialIdle(url, 0)
			if err != nil {
				t.Fatalf("dial %d: %v", len(clients), err)
			}
			clients = append(clients, rc)
		}
		waitUntil(t, waitTimeout, "sessions registered", func() bool { return openSessions(srv) == len(clients) })
	}
	open(100)
	g100, f100 := stableGoroutines(), countFDs(t)
	open(400)
	g500, f500 := stableGoroutines(), countFDs(t)
	t.Logf("goroutines: %d with 100 connections, %d with 500; descriptors: %d, %d", g100, g500, f100, f500)
	// The worker pool may still hold the workers the second burst of handshakes woke (up to
	// four per CPU, until they idle out); anything per connection would be hundreds.
	if limit := 4*runtime.GOMAXPROCS(0) + 5; g500-g100 > limit {
		t.Errorf("400 more idle connections added %d goroutines; want at most %d (none per connection)", g500-g100, limit)
	}
	// Client and server side live in this process: 2 per connection, so the server side
	// costs exactly one (no dup through File()).
	if d := f500 - f100; d < 2*400-10 || d > 2*400+10 {
		t.Errorf("400 more connections added %d descriptors; want 800±10 (one client + one server each)", d)
	}
}

// The slowloris run: 5,000 connections that each send half a frame and stall must not
// slow down a healthy client. Run by CI without -race: LIVEPOLL_LOAD=1 go test -run Slowloris ./live/
func TestSlowlorisDoesNotSlowHealthyClients(t *testing.T) {
	if os.Getenv("LIVEPOLL_LOAD") != "1" {
		t.Skip("load test: set LIVEPOLL_LOAD=1 to run (CI runs it in its own step, without -race)")
	}
	const attackers = 5000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Logf("raise RLIMIT_NOFILE: %v", err)
		}
	}
	if lim.Cur < 2*attackers+1000 {
		t.Skipf("RLIMIT_NOFILE is %d; need %d for %d attackers", lim.Cur, 2*attackers+1000, attackers)
	}
	closes := newCloseLog(t)
	srv, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			s.Send(Message{Topic: topic, Data: data})
		},
		OnClose: closes.OnClose,
	})
	healthy := dial(t, url)
	p99 := func(rounds int) time.Duration {
		lat := roundTrips(t, healthy, rounds)
		return lat[len(lat)*99/100]
	}
	p99(200) // warm up
	without := p99(2000)

	conns := make([]*rawClient, attackers)
	t.Cleanup(func() {
		for _, rc := range conns {
			if rc != nil {
				rc.Close()
			}
		}
	})
	half := clientFrame(opText, []byte(`{"topic":"never finished","data":"`+string(make([]byte, 100))+`"}`))
	var wg sync.WaitGroup
	errs := make(chan error, attackers)
	next := atomic.Int64{}
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= attackers {
					return
				}
				rc, err := dialIdle(url, 0)
				if err != nil {
					errs <- fmt.Errorf("attacker %d: %w", i, err)
					return
				}
				conns[i] = rc
				stall := half[:len(half)/2] // half of the payload
				if i%2 == 1 {
					stall = half[:1] // half of the header
				}
				rc.SetWriteDeadline(time.Now().Add(waitTimeout))
				if _, err := rc.Write(stall); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	waitUntil(t, 30*time.Second, "every attacker registered", func() bool { return openSessions(srv) == attackers+1 })
	time.Sleep(200 * time.Millisecond) // let the half frames be read
	with := p99(2000)
	t.Logf("healthy echo p99: %v without attackers, %v with %d stalled half frames", without, with, attackers)
	if with > 2*without+time.Millisecond {
		t.Errorf("p99 with attackers %v > 2 × %v + 1ms", with, without)
	}
	if n := closes.total(); n != 0 {
		t.Errorf("%d sessions closed during the attack; none should be (the attack is shorter than IdleTimeout)", n)
	}
	if n := openSessions(srv); n != attackers+1 {
		t.Errorf("%d sessions open, want %d", n, attackers+1)
	}
}

// Connections opening and dying (cleanly and by reset) while others receive: descriptor
// numbers are reused all the time, and no client ever gets another's bytes.
func TestNoCrossTalkWhileConnectionsChurn(t *testing.T) {
	t.Parallel()
	closes := newCloseLog(t)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			for range 5 {
				s.Send(Message{Topic: topic, Data: data})
			}
		},
		OnClose: closes.OnClose,
	})
	const workers, rounds = 16, 25
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for r := range rounds {
				token := fmt.Sprintf("w%d-r%d", w, r)
				rc, err := dialIdle(url, 0)
				if err != nil {
					errs <- err
					return
				}
				msg := fmt.Sprintf(`{"topic":%q,"data":%q}`, token, token)
				rc.SetDeadline(time.Now().Add(waitTimeout))
				if _, err := rc.Write(clientFrame(opText, []byte(msg))); err != nil {
					rc.Close()
					errs <- err
					return
				}
				for i := range 5 {
					if r%3 == 2 && i == 2 {
						break // leave with frames still coming
					}
					b0, p, err := rc.readFrame()
					if err != nil || b0&0x0f != opText || string(p) != msg {
						rc.Close()
						errs <- fmt.Errorf("%s: frame %d: %q %v, want %s", token, i, p, err, msg)
						return
					}
				}
				switch r % 3 {
				case 0:
					rc.Write(clientFrame(opClose, closePayload(1000, "")))
				case 1:
					rc.Conn.(*net.TCPConn).SetLinger(0) // reset
				}
				rc.Close()
			}
			errs <- nil
		}()
	}
	for range workers {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("churn timed out")
		}
	}
	waitUntil(t, waitTimeout, "every session closed", func() bool { return closes.total() == workers*rounds })
}
