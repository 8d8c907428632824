package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// clusterNode is one Server of a test cluster, with a subscribe command for its clients.
func clusterNode(t *testing.T, b Broker, log *slog.Logger) (*Server, string) {
	t.Helper()
	var srv *Server
	srv, url := testServer(t, Options{
		Broker: b,
		Logger: log,
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			switch topic {
			case "sub":
				srv.Subscribe(s, string(bytes.Trim(data, `"`)))
			case "unsub":
				srv.Unsubscribe(s, string(bytes.Trim(data, `"`)))
			}
			s.Send(Message{Topic: "ok"})
		},
	})
	return srv, url
}

func subscribeClient(t *testing.T, url, topic string) *websocket.Conn {
	t.Helper()
	c := dial(t, url)
	send(t, c, fmt.Sprintf(`{"topic":"sub","data":%q}`, topic))
	if _, got := readMsg(t, c); got != `{"topic":"ok"}` {
		t.Fatalf("subscribe answer %s", got)
	}
	return c
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A publish on node A reaches the subscribers on B and C exactly once and in order, and
// A's own subscribers once (the broker does not echo it back to A).
func TestBrokerPublishReachesEveryNodeOnce(t *testing.T) {
	mb := NewMemoryBroker()
	a, urlA := clusterNode(t, mb.Node(), quietLogger())
	b, urlB := clusterNode(t, mb.Node(), quietLogger())
	c, urlC := clusterNode(t, mb.Node(), quietLogger())
	clients := []*websocket.Conn{
		subscribeClient(t, urlA, "room"),
		subscribeClient(t, urlB, "room"),
		subscribeClient(t, urlB, "room"),
		subscribeClient(t, urlC, "room"),
	}
	other := subscribeClient(t, urlC, "elsewhere")
	for _, srv := range []*Server{b, c} {
		within(t, "interest reaches the broker", func() bool { return srv.Stats().Broker.Interest >= 1 })
	}
	const n = 200
	for i := range n {
		a.Publish("room", fmt.Appendf(nil, "%d", i))
	}
	a.Publish("room", []byte(`"end"`))
	for k, cl := range clients {
		for i := range n {
			if _, got := readMsg(t, cl); got != fmt.Sprintf(`{"topic":"room","data":%d}`, i) {
				t.Fatalf("client %d: message %d is %s", k, i, got)
			}
		}
		if _, got := readMsg(t, cl); got != `{"topic":"room","data":"end"}` {
			t.Fatalf("client %d: got %s after the last message, want the end marker (a duplicate?)", k, got)
		}
	}
	c.Publish("elsewhere", []byte(`"last"`))
	if _, got := readMsg(t, other); got != `{"topic":"elsewhere","data":"last"}` {
		t.Fatalf("other topic got %s", got)
	}
	sa, sb := a.Stats().Broker, b.Stats().Broker
	if !sa.Connected || sa.Published != n+1 || sa.Received != 0 {
		t.Errorf("node A broker stats %+v, want connected, %d published, 0 received", sa, n+1)
	}
	if sb.Received != n+1 {
		t.Errorf("node B received %d from the broker, want %d", sb.Received, n+1)
	}
}

// A node subscribes at the broker only to topics it has local subscribers for, and drops
// the interest when the last one leaves (by Unsubscribe or by closing).
func TestBrokerInterestFollowsLocalSubscribers(t *testing.T) {
	mb := NewMemoryBroker()
	node := mb.Node()
	srv, url := clusterNode(t, node, quietLogger())
	held := func() []string {
		mb.mu.RLock()
		defer mb.mu.RUnlock()
		var names []string
		for name := range node.(*memoryNode).topics {
			names = append(names, name)
		}
		return names
	}
	c1 := subscribeClient(t, url, "x")
	c2 := subscribeClient(t, url, "x")
	within(t, "interest in x", func() bool { return len(held()) == 1 && srv.Stats().Broker.Interest == 1 })
	send(t, c1, `{"topic":"unsub","data":"x"}`)
	readMsg(t, c1)
	time.Sleep(50 * time.Millisecond)
	if got := held(); len(got) != 1 {
		t.Fatalf("interest %v after one of two subscribers left, want [x]", got)
	}
	c2.Close()
	within(t, "interest dropped", func() bool { return len(held()) == 0 && srv.Stats().Broker.Interest == 0 })
}

// Subscribes and unsubscribes racing on many goroutines leave the broker's interest equal
// to the local topics.
func TestBrokerInterestSettlesUnderRaces(t *testing.T) {
	mb := NewMemoryBroker()
	node := mb.Node()
	srv, url := clusterNode(t, node, quietLogger())
	conns := make([]*websocket.Conn, 8)
	for i := range conns {
		conns[i] = subscribeClient(t, url, "warmup")
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			for k := range 100 {
				topic := fmt.Sprintf("t%d", k%5)
				verb := "sub"
				if (k+i)%2 == 1 {
					verb = "unsub"
				}
				c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"topic":%q,"data":%q}`, verb, topic))
			}
			c.WriteMessage(websocket.TextMessage, []byte(`{"topic":"unsub","data":"warmup"}`))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for range 101 {
				if _, _, err := c.ReadMessage(); err != nil {
					t.Errorf("read: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := func() map[string]bool {
		m := map[string]bool{}
		for k := range 5 {
			if name := fmt.Sprintf("t%d", k); srv.topics.has(name) {
				m[name] = true
			}
		}
		return m
	}
	within(t, "broker interest equal to local topics", func() bool {
		mb.mu.RLock()
		defer mb.mu.RUnlock()
		got := node.(*memoryNode).topics
		w := want()
		if len(got) != len(w) {
			return false
		}
		for name := range got {
			if !w[name] {
				return false
			}
		}
		return true
	})
}

// flakyBroker is a Broker whose connection the test takes down and brings back.
type flakyBroker struct {
	mu        sync.Mutex
	node      BrokerNode
	up        bool
	topics    map[string]bool
	published []string
	closed    bool
}

var errBrokerDown = errors.New("test broker down")

func (f *flakyBroker) Start(node BrokerNode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.node, f.up, f.topics = node, true, map[string]bool{}
	node.Connected()
	return nil
}

func (f *flakyBroker) Publish(topic string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return errBrokerDown
	}
	f.published = append(f.published, string(data))
	return nil
}

func (f *flakyBroker) Subscribe(topic string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return errBrokerDown
	}
	f.topics[topic] = true
	return nil
}

func (f *flakyBroker) Unsubscribe(topic string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return errBrokerDown
	}
	delete(f.topics, topic)
	return nil
}

func (f *flakyBroker) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *flakyBroker) set(up bool) {
	f.mu.Lock()
	f.up = up
	f.mu.Unlock()
	if up {
		f.node.Connected()
	} else {
		f.node.Disconnected(errBrokerDown)
	}
}

func (f *flakyBroker) subscribed(topic string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.topics[topic]
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// While the broker is away the node keeps serving its own subscribers, counts what it
// could not send, says so in Stats and the log, retries interest changes, and recovers
// when the broker is back.
func TestBrokerOutageKeepsLocalTrafficAndRecovers(t *testing.T) {
	fb := &flakyBroker{}
	var logs syncBuffer
	srv, url := clusterNode(t, fb, slog.New(slog.NewTextHandler(&logs, nil)))
	c := subscribeClient(t, url, "a")
	within(t, "interest in a", func() bool { return fb.subscribed("a") })

	fb.set(false)
	if st := srv.Stats().Broker; st.Connected || st.Disconnects != 1 {
		t.Fatalf("after the broker went away: %+v, want disconnected once", st)
	}
	srv.Publish("a", []byte(`1`))
	if _, got := readMsg(t, c); got != `{"topic":"a","data":1}` {
		t.Fatalf("local delivery during the outage: %s", got)
	}
	c2 := subscribeClient(t, url, "b") // interest change while down: fails, retried
	within(t, "a failed interest change", func() bool { return srv.Stats().Broker.InterestError >= 1 })
	if st := srv.Stats().Broker; st.PublishErrors != 1 {
		t.Fatalf("publish errors %d, want 1", st.PublishErrors)
	}

	fb.set(true)
	deadline := time.Now().Add(5 * time.Second)
	for !fb.subscribed("b") {
		if time.Now().After(deadline) {
			t.Fatal("interest in b not restored within 5 s of the broker's return")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Publish("b", []byte(`2`))
	if _, got := readMsg(t, c2); got != `{"topic":"b","data":2}` {
		t.Fatalf("after recovery: %s", got)
	}
	st := srv.Stats().Broker
	if !st.Connected || st.Published != 1 || st.Interest != 2 {
		t.Fatalf("after recovery: %+v, want connected, 1 published, interest 2", st)
	}
	for _, want := range []string{"broker disconnected", "broker connected"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// Interest changes failing while the broker is known to be away are retried quietly.
	if strings.Contains(logs.String(), "interest change failed") {
		t.Errorf("interest failures logged during an outage:\n%s", logs.String())
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	closed := fb.closed
	fb.mu.Unlock()
	if !closed {
		t.Fatal("Close did not close the broker")
	}
}

// Invalid JSON is neither delivered nor sent to the other nodes; with no local
// subscribers, valid data still goes to the broker.
func TestBrokerPublishChecksJSONWithoutLocalSubscribers(t *testing.T) {
	fb := &flakyBroker{}
	srv := New(Options{Broker: fb, Logger: quietLogger()})
	defer srv.Close()
	srv.Publish("nobody-here", []byte(`{"ok":true}`))
	srv.Publish("nobody-here", []byte(`{bad`))
	fb.mu.Lock()
	got := fb.published
	fb.mu.Unlock()
	if len(got) != 1 || got[0] != `{"ok":true}` {
		t.Fatalf("sent to the broker: %q, want only the valid message", got)
	}
}
