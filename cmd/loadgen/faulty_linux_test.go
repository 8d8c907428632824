//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// faultyServer speaks the app protocol (subscribe, publish, echo) from raw gobwas/ws
// connections and misbehaves on purpose, so that tests can check loadgen counts what
// a real server's failures would cost.
type faultyServer struct {
	// dropEcho, if set, is asked for every echo request with seq > 0 (n counts them
	// server-wide from 1): true drops it unanswered.
	dropEcho func(n int64) bool
	// closeOn, if set, is asked for every echo request (k counts the connection's own
	// from 1) and every publish (k counts publishes server-wide) with the connection's
	// accept number; a non-empty answer closes the connection that way: "1008" (close
	// frame with that code), "reset" (RST) or "eof" (FIN, no close frame).
	closeOn func(conn int, k int64) string

	ln       net.Listener
	accepted atomic.Int64
	echoes   atomic.Int64
	pubs     atomic.Int64
	serving  sync.WaitGroup

	mu    sync.Mutex
	conns map[*faultyConn]bool
	subs  map[string]map[*faultyConn]bool
}

type faultyConn struct {
	num    int
	nc     net.Conn
	mu     sync.Mutex // serialises writes
	echoes int64
	gone   atomic.Bool
}

func startFaultyServer(t *testing.T, s *faultyServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.conns, s.subs = ln, map[*faultyConn]bool{}, map[string]map[*faultyConn]bool{}
	s.serving.Go(s.accept)
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.serving.Wait()
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

func (s *faultyServer) accept() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &faultyConn{num: int(s.accepted.Add(1)), nc: nc}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.serving.Go(func() { s.serve(c) })
	}
}

func (s *faultyServer) serve(c *faultyConn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		for _, m := range s.subs {
			delete(m, c)
		}
		s.mu.Unlock()
		c.nc.Close()
	}()
	if _, err := ws.Upgrade(c.nc); err != nil {
		return
	}
	for {
		msg, op, err := wsutil.ReadClientData(c.nc)
		if err != nil || op == ws.OpClose {
			return
		}
		if c.gone.Load() {
			continue // closed on purpose: read on until the client goes (no RST for its data)
		}
		var env struct {
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}
		if json.Unmarshal(msg, &env) != nil {
			return
		}
		switch env.Topic {
		case "subscribe":
			var td topicData
			_ = json.Unmarshal(env.Data, &td)
			s.mu.Lock()
			if s.subs[td.Topic] == nil {
				s.subs[td.Topic] = map[*faultyConn]bool{}
			}
			s.subs[td.Topic][c] = true
			s.mu.Unlock()
		case "publish":
			var td topicData
			_ = json.Unmarshal(env.Data, &td)
			k := s.pubs.Add(1)
			out := append(append([]byte(`{"topic":"`+td.Topic+`","data":`), td.Data...), '}')
			s.mu.Lock()
			var targets []*faultyConn
			for sub := range s.subs[td.Topic] {
				targets = append(targets, sub)
			}
			s.mu.Unlock()
			for _, sub := range targets {
				if s.closeOn != nil {
					if how := s.closeOn(sub.num, k); how != "" {
						sub.kill(how)
						continue
					}
				}
				sub.write(out)
			}
		case "echo":
			c.echoes++
			if s.closeOn != nil {
				if how := s.closeOn(c.num, c.echoes); how != "" {
					c.kill(how)
					continue
				}
			}
			if !bytes.Contains(env.Data, []byte(`"seq":0,`)) && s.dropEcho != nil && s.dropEcho(s.echoes.Add(1)) {
				continue
			}
			c.write(append(append([]byte(`{"topic":"echo","data":`), env.Data...), '}'))
		}
	}
}

func (c *faultyConn) write(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.gone.Load() {
		_ = wsutil.WriteServerText(c.nc, p)
	}
}

// kill closes the connection as how says, once.
func (c *faultyConn) kill(how string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone.Swap(true) {
		return
	}
	switch how {
	case "reset":
		_ = c.nc.(*net.TCPConn).SetLinger(0)
		c.nc.Close()
	case "eof":
		_ = c.nc.(*net.TCPConn).CloseWrite()
	default: // a close code
		code := 0
		for _, d := range how {
			code = code*10 + int(d-'0')
		}
		_ = wsutil.WriteServerMessage(c.nc, ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(code), "test"))
	}
}

// closeEveryThird closes the connections with accept numbers 1, 2 and 3 mod 4 with a
// 1008 close frame, a reset and a FIN, on their third echo request (or the first publish
// they get from the third on).
func closeEveryThird(conn int, k int64) string {
	if k < 3 {
		return ""
	}
	return [...]string{"", "1008", "reset", "eof"}[conn%4]
}

func TestEchoCountsWhatServerClosedConnectionsOwe(t *testing.T) {
	t.Parallel()
	url := startFaultyServer(t, &faultyServer{closeOn: closeEveryThird})
	r := runLoadgen(t, "-url", url, "-stats", "none", "-scenario", "echo", "-conns", "20",
		"-duration", "1s", "-rate", "200", "-drain", "500ms", "-progress", "0")
	checkServerCloses(t, r)
	l := r.Load
	// Each closed connection's third request went unanswered at least.
	if l.Unanswered < 15 || l.Lost != l.Unanswered || l.Deliveries+l.Lost != l.Sent || l.Expected != l.Sent {
		t.Errorf("sent %d, answers %d, expected %d, lost %d, unanswered %d: want every request answered or unanswered, at least 15 unanswered",
			l.Sent, l.Deliveries, l.Expected, l.Lost, l.Unanswered)
	}
}

func TestPublishCountsWhatServerClosedConnectionsOwe(t *testing.T) {
	t.Parallel()
	url := startFaultyServer(t, &faultyServer{closeOn: closeEveryThird})
	r := runLoadgen(t, "-url", url, "-stats", "none", "-scenario", "publish", "-conns", "20", "-topics", "2",
		"-duration", "1s", "-rate", "50", "-drain", "500ms", "-progress", "0")
	checkServerCloses(t, r)
	l := r.Load
	// 15 of 20 subscribers are closed at the third publish: each misses the rest.
	if want := 15 * (l.Published/2 - 2); l.Lost < want || l.Deliveries+l.Lost != l.Expected || l.Unanswered != 0 {
		t.Errorf("published %d, deliveries %d, expected %d, lost %d (want at least %d), unanswered %d",
			l.Published, l.Deliveries, l.Expected, l.Lost, want, l.Unanswered)
	}
}

// checkServerCloses checks the closes closeEveryThird makes of 20 connections.
func checkServerCloses(t *testing.T, r *report) {
	t.Helper()
	c := r.Connections
	want := map[string]int64{"close_1008": 5, "reset": 5, "eof": 5}
	if c.ServerClosed != 15 || c.OpenAtEnd != 5 || len(c.ServerClosedBy) != len(want) {
		t.Errorf("server closed %d (%v), %d open at the end; want 15 %v, 5 open", c.ServerClosed, c.ServerClosedBy, c.OpenAtEnd, want)
	}
	for k, n := range want {
		if c.ServerClosedBy[k] != n {
			t.Errorf("server_closed_by[%s] = %d, want %d (%v)", k, c.ServerClosedBy[k], n, c.ServerClosedBy)
		}
	}
	if r.nothingLost() || r.Load.Lost == 0 {
		t.Errorf("lost %d, nothingLost %v: the closed connections lost messages", r.Load.Lost, r.nothingLost())
	}
	var out bytes.Buffer
	r.print(&out)
	for _, s := range []string{"LOST ", "close_1008 5", "reset 5", "eof 5"} {
		if !bytes.Contains(out.Bytes(), []byte(s)) {
			t.Errorf("the table does not say %q:\n%s", s, out.String())
		}
	}
}

func TestEchoCountsDroppedRequestsAsUnanswered(t *testing.T) {
	t.Parallel()
	url := startFaultyServer(t, &faultyServer{dropEcho: func(n int64) bool { return n%5 == 0 }})
	r := runLoadgen(t, "-url", url, "-stats", "none", "-scenario", "echo", "-conns", "10",
		"-duration", "1s", "-rate", "200", "-drain", "300ms", "-progress", "0")
	l := r.Load
	if l.Sent == 0 || l.Unanswered != l.Sent/5 || l.Lost != l.Unanswered || l.Deliveries != l.Sent-l.Unanswered {
		t.Errorf("sent %d, answers %d, lost %d, unanswered %d: want every 5th request unanswered and lost", l.Sent, l.Deliveries, l.Lost, l.Unanswered)
	}
	if r.Connections.ServerClosed != 0 || r.nothingLost() {
		t.Errorf("server closed %d, nothingLost %v", r.Connections.ServerClosed, r.nothingLost())
	}
}
