// Package brokertest is the test suite every live.Broker adapter runs against a real
// broker server: several live.Server nodes on loopback HTTP servers with WebSocket
// clients, a publish on one node reaching the others exactly once and in order, interest
// following the local subscribers, and an outage of the broker server. The adapters'
// modules (broker/nats, broker/redis) call it from their tests with a Harness for their
// broker; it is an ordinary package so that those modules can import it.
package brokertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/live"
)

// Harness connects the suite to one kind of broker.
type Harness struct {
	// NewBroker returns the Broker of a new node, connected to the broker server. The
	// suite closes it by closing the node's Server; what NewBroker opened besides (a
	// connection the adapter does not own) it closes with t.Cleanup.
	NewBroker func(t *testing.T) live.Broker
	// Interest reports how many subscriptions the broker server holds for topic, over all
	// nodes, as the server itself reports it.
	Interest func(t *testing.T, topic string) int
	// Stop takes the broker server down; Start brings a new one up at the same address.
	// RunOutage needs them.
	Stop, Start func(t *testing.T)
}

// Wait bounds every wait of the suite.
const Wait = 10 * time.Second

// Node is one live.Server of a test cluster, serving on a loopback HTTP server, with its
// log in Log. Its clients subscribe by sending {"topic":"sub","data":"<topic>"} and leave
// with "unsub"; the node answers {"topic":"ok"} once the change took effect locally.
type Node struct {
	Name string
	Srv  *live.Server
	URL  string
	Log  *SyncBuffer
}

// NewNode starts a node using b; it is closed when the test ends.
func NewNode(t *testing.T, name string, b live.Broker) *Node {
	t.Helper()
	n := &Node{Name: name, Log: &SyncBuffer{}}
	logger := slog.New(slog.NewTextHandler(n.Log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n.Srv = live.New(live.Options{
		Broker: b,
		Logger: logger,
		OnMessage: func(ctx context.Context, s *live.Session, topic string, data []byte) {
			var name string
			_ = json.Unmarshal(data, &name)
			switch topic {
			case "sub":
				n.Srv.Subscribe(s, name)
			case "unsub":
				n.Srv.Unsubscribe(s, name)
			}
			s.Send(live.Message{Topic: "ok"})
		},
	})
	hs := httptest.NewServer(n.Srv.Handler())
	n.URL = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		hs.Close()
		if err := n.Srv.Close(); err != nil {
			t.Errorf("node %s: Close: %v", name, err)
		}
	})
	return n
}

// Client is a WebSocket client of a Node.
type Client struct {
	Name string
	c    *websocket.Conn
}

// Client connects a client to n and subscribes it to topics.
func (n *Node) Client(t *testing.T, name string, topics ...string) *Client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: Wait}
	c, _, err := d.Dial(n.URL, nil)
	if err != nil {
		t.Fatalf("client %s: dial node %s: %v", name, n.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &Client{Name: name, c: c}
	for _, topic := range topics {
		cl.Command(t, "sub", topic)
	}
	return cl
}

// Command sends verb ("sub" or "unsub") for topic and waits for the node's answer.
func (c *Client) Command(t *testing.T, verb, topic string) {
	t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(Wait))
	msg, _ := json.Marshal(Msg{Topic: verb, Data: mustJSON(topic)})
	if err := c.c.WriteMessage(websocket.TextMessage, msg); err != nil {
		t.Fatalf("client %s: %s %s: %v", c.Name, verb, topic, err)
	}
	if m, err := c.Next(Wait); err != nil || m.Topic != "ok" {
		t.Fatalf("client %s: answer to %s %s: %+v, %v", c.Name, verb, topic, m, err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Close closes the client's connection.
func (c *Client) Close() { c.c.Close() }

// Msg is a message as a client receives it.
type Msg struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// Next reads the next message, waiting up to d.
func (c *Client) Next(d time.Duration) (Msg, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	_, p, err := c.c.ReadMessage()
	if err != nil {
		return Msg{}, err
	}
	var m Msg
	if err := json.Unmarshal(p, &m); err != nil {
		return Msg{}, fmt.Errorf("client %s: bad message %s: %v", c.Name, p, err)
	}
	return m, nil
}

// Expect reads the next message and fails the test unless it is topic with data want.
func (c *Client) Expect(t *testing.T, topic, want string) {
	t.Helper()
	m, err := c.Next(Wait)
	if err != nil {
		t.Fatalf("client %s: waiting for %s %s: %v", c.Name, topic, want, err)
	}
	if m.Topic != topic || string(m.Data) != want {
		t.Fatalf("client %s: got %s %s, want %s %s", c.Name, m.Topic, m.Data, topic, want)
	}
}

// Quiet fails the test if a message arrives within d.
func (c *Client) Quiet(t *testing.T, d time.Duration) {
	t.Helper()
	if m, err := c.Next(d); err == nil {
		t.Fatalf("client %s: unexpected message %s %s", c.Name, m.Topic, m.Data)
	}
}

// SyncBuffer is a log sink safe for concurrent writes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Count reports how many lines of the log contain substr.
func (s *SyncBuffer) Count(substr string) int {
	n := 0
	for _, line := range strings.Split(s.String(), "\n") {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// Eventually waits up to Wait for cond and fails the test with what if it does not hold.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", Wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitInterest waits until the broker server holds want subscriptions for topic.
func waitInterest(t *testing.T, h Harness, topic string, want int) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		got := h.Interest(t, topic)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker holds %d subscriptions for %q after %v, want %d", got, topic, Wait, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
