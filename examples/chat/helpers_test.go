package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/live"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// waitTimeout bounds every wait of the Go tests.
const waitTimeout = 5 * time.Second

// testNode is a chat node served by an httptest server on loopback.
type testNode struct {
	*node
	base string // http://127.0.0.1:port
	// settle returns once what the node handed to its broker so far has reached the
	// broker itself, so a node that subscribes later does not receive it.
	settle func(t *testing.T, srv *live.Server)
}

// cluster makes the Brokers of one test's nodes. newBroker returns a node's Broker and
// its settle function; it may register cleanups, which run after the node's shutdown.
type cluster struct {
	name      string
	newBroker func(t *testing.T) (live.Broker, func(t *testing.T, srv *live.Server))
}

// memoryCluster joins the nodes with a live.MemoryBroker, which delivers synchronously.
func memoryCluster() cluster {
	var mb *live.MemoryBroker
	return cluster{name: "memory", newBroker: func(t *testing.T) (live.Broker, func(*testing.T, *live.Server)) {
		if mb == nil {
			mb = live.NewMemoryBroker()
		}
		return mb.Node(), func(*testing.T, *live.Server) {}
	}}
}

// clusterKinds are the brokers the cross-node tests run on; new sets one up for a test.
var clusterKinds = []struct {
	name string
	new  func(t *testing.T) cluster
}{
	{"memory", func(*testing.T) cluster { return memoryCluster() }},
	{"nats", natsCluster},
	{"redis", redisCluster},
}

// forEachCluster runs test as a parallel subtest on each kind of cluster.
func forEachCluster(t *testing.T, test func(t *testing.T, c cluster)) {
	for _, kind := range clusterKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			test(t, kind.new(t))
		})
	}
}

// startNodes starts count nodes sharing one live.MemoryBroker, as two processes would share
// NATS or Redis. They shut down when the test ends.
func startNodes(t *testing.T, count int, refresh time.Duration) []*testNode {
	t.Helper()
	return memoryCluster().start(t, count, refresh)
}

// start starts count nodes on the cluster's broker; they shut down when the test ends.
func (c cluster) start(t *testing.T, count int, refresh time.Duration) []*testNode {
	t.Helper()
	nodes := make([]*testNode, count)
	for i := range nodes {
		b, settle := c.newBroker(t)
		n := newNode(nodeOptions{
			Broker:  b,
			Refresh: refresh,
			Logger:  slog.New(slog.DiscardHandler),
		})
		hs := httptest.NewServer(n.handler())
		t.Cleanup(func() {
			hs.Close()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := n.shutdown(ctx); err != nil {
				t.Errorf("node %d shutdown: %v", i, err)
			}
		})
		waitFor(t, "the node's broker to connect", func() bool { return n.srv.Stats().Broker.Connected })
		nodes[i] = &testNode{node: n, base: hs.URL, settle: settle}
	}
	return nodes
}

func (tn *testNode) wsURL(user string) string {
	return "ws" + strings.TrimPrefix(tn.base, "http") + "/ws?user=" + url.QueryEscape(user)
}

// check asks GET /check?user= and returns the status and the body.
func (tn *testNode) check(t *testing.T, user string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tn.base+"/check?user="+url.QueryEscape(user), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("check %q: %v", user, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		t.Fatalf("check %q: %v", user, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// dialStatus opens a WebSocket as user and returns the handshake's status; a connection
// that was accepted is closed at once.
func (tn *testNode) dialStatus(t *testing.T, user string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, tn.wsURL(user), nil)
	if err == nil {
		conn.CloseNow()
		return resp.StatusCode
	}
	if resp == nil {
		t.Fatalf("dial %q: %v", user, err)
	}
	return resp.StatusCode
}

// envelope is a message as the server sends it.
type envelope struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// client is a test user: a WebSocket and a goroutine that reads from it into in.
type client struct {
	t    *testing.T
	node *testNode
	name string
	conn *websocket.Conn
	in   chan envelope
	stop chan struct{}
	done chan struct{}
	id   string // session ID, from "joined"
}

func (tn *testNode) dial(t *testing.T, user string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, tn.wsURL(user), nil)
	if err != nil {
		t.Fatalf("dial %q: %v", user, err)
	}
	c := &client{
		t: t, node: tn, name: user, conn: conn,
		in:   make(chan envelope, 64),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go c.read()
	t.Cleanup(c.drop)
	return c
}

func (c *client) read() {
	defer close(c.done)
	defer close(c.in)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		var e envelope
		if err := json.Unmarshal(data, &e); err != nil {
			c.t.Errorf("%s: message is not an envelope: %s", c.name, data)
			continue
		}
		select {
		case c.in <- e:
		case <-c.stop:
			return
		}
	}
}

// drop closes the connection without a closing handshake and waits for the reader.
func (c *client) drop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.conn.CloseNow()
	<-c.done
}

// close closes the connection with a closing handshake (the page's Leave).
func (c *client) close() {
	c.t.Helper()
	if err := c.conn.Close(websocket.StatusNormalClosure, "left"); err != nil {
		c.t.Errorf("%s: close: %v", c.name, err)
	}
	c.drop()
}

func (c *client) send(topic string, data any) {
	c.t.Helper()
	raw, err := json.Marshal(map[string]any{"topic": topic, "data": data})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, raw); err != nil {
		c.t.Fatalf("%s: send %s: %v", c.name, raw, err)
	}
}

// next returns the next message, failing the test if none comes within waitTimeout.
func (c *client) next() envelope {
	c.t.Helper()
	select {
	case e, ok := <-c.in:
		if !ok {
			c.t.Fatalf("%s: connection closed while a message was expected", c.name)
		}
		return e
	case <-time.After(waitTimeout):
		c.t.Fatalf("%s: no message within %v", c.name, waitTimeout)
	}
	panic("unreachable")
}

// nextEvent returns the next room event, skipping rosters (they come on a timer).
func (c *client) nextEvent() event {
	c.t.Helper()
	for {
		e := c.next()
		if !strings.HasPrefix(e.Topic, "room:") {
			c.t.Fatalf("%s: got %s %s, want a room event", c.name, e.Topic, e.Data)
		}
		var ev event
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			c.t.Fatalf("%s: bad event %s: %v", c.name, e.Data, err)
		}
		if e.Topic != roomTopic(ev.Room) {
			c.t.Fatalf("%s: event of room %q on topic %q", c.name, ev.Room, e.Topic)
		}
		if ev.Type != "roster" {
			return ev
		}
	}
}

// wantEvent checks that the next room event is typ in room, from user (when not "").
func (c *client) wantEvent(typ, room, user string) event {
	c.t.Helper()
	ev := c.nextEvent()
	if ev.Type != typ || ev.Room != room || (user != "" && ev.User != user) {
		c.t.Fatalf("%s: got event %+v, want %s in %s from %q", c.name, ev, typ, room, user)
	}
	return ev
}

// wantError checks that the next message is an "error" whose text contains want.
func (c *client) wantError(want string) {
	c.t.Helper()
	e := c.next()
	var body struct{ Message string }
	_ = json.Unmarshal(e.Data, &body)
	if e.Topic != "error" || !strings.Contains(body.Message, want) {
		c.t.Fatalf("%s: got %s %s, want an error containing %q", c.name, e.Topic, e.Data, want)
	}
}

// join joins room and checks the answers: "joined", then the client's own join event. It
// returns once the join has been handed to the broker too (a node delivers locally first),
// so that members who join later on other nodes do not receive it.
func (c *client) join(room string) {
	c.t.Helper()
	published := c.node.srv.Stats().Broker.Published
	c.send("join", map[string]string{"room": room})
	e := c.next()
	var joined struct {
		Room, ID, User string
		TTL            int64 `json:"ttl_ms"`
	}
	if err := json.Unmarshal(e.Data, &joined); err != nil || e.Topic != "joined" || joined.Room != room || joined.ID == "" || joined.TTL <= 0 {
		c.t.Fatalf("%s: got %s %s, want joined %s", c.name, e.Topic, e.Data, room)
	}
	if c.id != "" && c.id != joined.ID {
		c.t.Fatalf("%s: session ID changed from %s to %s", c.name, c.id, joined.ID)
	}
	c.id = joined.ID
	if ev := c.wantEvent("join", room, joined.User); ev.ID != c.id {
		c.t.Fatalf("%s: own join has ID %s, want %s", c.name, ev.ID, c.id)
	}
	waitFor(c.t, c.name+"'s join to reach the broker", func() bool {
		return c.node.srv.Stats().Broker.Published > published
	})
	c.node.settle(c.t, c.node.srv)
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
