package natsbroker

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/livepoll/livepoll/internal/brokertest"
	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/live"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// natsServer is an in-process NATS server on a loopback port that stays the same across
// Stop and Start.
type natsServer struct {
	mu   sync.Mutex
	srv  *server.Server
	port int
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	ns := &natsServer{port: -1}
	ns.Start(t)
	t.Cleanup(func() { ns.Stop(t) })
	return ns
}

// Start runs a new server on the port of the previous one (a free port the first time).
func (ns *natsServer) Start(t *testing.T) {
	t.Helper()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.srv != nil {
		t.Fatal("NATS server already running")
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: ns.port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(brokertest.Wait) {
		s.Shutdown()
		t.Fatalf("nats server not ready within %v", brokertest.Wait)
	}
	ns.srv = s
	ns.port = s.Addr().(*net.TCPAddr).Port
}

// Stop shuts the server down; its clients see their connections close.
func (ns *natsServer) Stop(t *testing.T) {
	ns.mu.Lock()
	s := ns.srv
	ns.srv = nil
	ns.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (ns *natsServer) URL() string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return "nats://127.0.0.1:" + strconv.Itoa(ns.port)
}

// subscriptions counts the server's subscriptions that a publish to subject would reach.
func (ns *natsServer) subscriptions(t *testing.T, subject string) int {
	t.Helper()
	ns.mu.Lock()
	s := ns.srv
	ns.mu.Unlock()
	if s == nil {
		return -1
	}
	sz, err := s.Subsz(&server.SubszOptions{Subscriptions: true, Test: subject})
	if err != nil {
		t.Fatalf("subsz: %v", err)
	}
	return sz.Total
}

// connect opens a client connection that reconnects quickly and forever; it is closed
// when the test ends (after the nodes, which were started later).
func connect(t *testing.T, ns *natsServer, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
		nats.Timeout(2 * time.Second),
	}, opts...)
	nc, err := nats.Connect(ns.URL(), opts...)
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func harness(t *testing.T) brokertest.Harness {
	ns := startNATS(t)
	subject := New(nil, Options{}).Subject
	return brokertest.Harness{
		NewBroker: func(t *testing.T) live.Broker { return New(connect(t, ns), Options{}) },
		Interest:  func(t *testing.T, topic string) int { return ns.subscriptions(t, subject(topic)) },
		Stop:      ns.Stop,
		Start:     ns.Start,
	}
}

func TestClusterDelivery(t *testing.T) { brokertest.RunDelivery(t, harness(t)) }
func TestClusterInterest(t *testing.T) { brokertest.RunInterest(t, harness(t)) }
func TestClusterOutage(t *testing.T)   { brokertest.RunOutage(t, harness(t)) }
func TestClusterTopics(t *testing.T)   { brokertest.RunTopics(t, harness(t)) }

// With nats.NoEcho the server does not send a node's messages back; without it the
// broker drops them itself (and counts them). Either way no node sees its own messages
// twice.
func TestEcho(t *testing.T) {
	for _, noEcho := range []bool{false, true} {
		t.Run(map[bool]string{false: "echo", true: "NoEcho"}[noEcho], func(t *testing.T) {
			ns := startNATS(t)
			var opts []nats.Option
			if noEcho {
				opts = append(opts, nats.NoEcho())
			}
			ba, bb := New(connect(t, ns, opts...), Options{}), New(connect(t, ns, opts...), Options{})
			a := brokertest.NewNode(t, "A", ba)
			b := brokertest.NewNode(t, "B", bb)
			a1 := a.Client(t, "a1", "t")
			b1 := b.Client(t, "b1", "t")
			brokertest.Eventually(t, "interest", func() bool { return ns.subscriptions(t, ba.Subject("t")) == 2 })
			a.Srv.Publish("t", []byte(`1`))
			a1.Expect(t, "t", `1`)
			b1.Expect(t, "t", `1`)
			b.Srv.Publish("t", []byte(`2`))
			a1.Expect(t, "t", `2`)
			b1.Expect(t, "t", `2`)
			a1.Quiet(t, 50*time.Millisecond)
			b1.Quiet(t, 50*time.Millisecond)
			echoes := ba.Stats().Echoes + bb.Stats().Echoes
			if noEcho && echoes != 0 || !noEcho && echoes != 2 {
				t.Fatalf("%d echoes dropped, want %d", echoes, map[bool]int{false: 2, true: 0}[noEcho])
			}
		})
	}
}

// Other programs may publish to a topic's subject; their messages (without the node
// header) reach the subscribers. Invalid JSON is dropped by the Server.
func TestForeignPublisher(t *testing.T) {
	ns := startNATS(t)
	br := New(connect(t, ns), Options{Prefix: "app.live"})
	n := brokertest.NewNode(t, "A", br)
	c := n.Client(t, "c", "chat room.1")
	subject := br.Subject("chat room.1")
	if subject != "app.live.chat%20room%2E1" {
		t.Fatalf("subject %q", subject)
	}
	brokertest.Eventually(t, "interest", func() bool { return ns.subscriptions(t, subject) == 1 })
	other := connect(t, ns)
	other.Publish(subject, []byte(`not json`))
	other.Publish(subject, []byte(`{"from":"outside"}`))
	other.Flush()
	c.Expect(t, "chat room.1", `{"from":"outside"}`)
	if st := br.Stats(); st.Subscriptions != 1 || st.Echoes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The broker leaves the program's handlers alone: they are called as before, and
// changing them later does not blind the broker.
func TestUserHandlersKept(t *testing.T) {
	ns := startNATS(t)
	var disconnects, reconnects atomic.Int32
	nc := connect(t, ns,
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnects.Add(1) }),
		nats.ReconnectHandler(func(*nats.Conn) { reconnects.Add(1) }),
	)
	n := brokertest.NewNode(t, "A", New(nc, Options{}))
	nc.SetReconnectHandler(func(*nats.Conn) { reconnects.Add(10) })
	ns.Stop(t)
	brokertest.Eventually(t, "disconnect seen by node and program", func() bool {
		return !n.Srv.Stats().Broker.Connected && disconnects.Load() == 1
	})
	ns.Start(t)
	brokertest.Eventually(t, "reconnect seen by node and program", func() bool {
		return n.Srv.Stats().Broker.Connected && reconnects.Load() == 10
	})
}

// A connection that nats.go closes is reported lost, and publishing fails at once.
func TestClosedConnection(t *testing.T) {
	ns := startNATS(t)
	nc := connect(t, ns)
	br := New(nc, Options{})
	n := brokertest.NewNode(t, "A", br)
	if !n.Srv.Stats().Broker.Connected {
		t.Fatal("not connected after New")
	}
	nc.Close()
	brokertest.Eventually(t, "closed connection reported in Stats and the log", func() bool {
		return !n.Srv.Stats().Broker.Connected && strings.Contains(n.Log.String(), "connection closed")
	})
	if err := br.Publish("t", []byte(`1`)); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("Publish on a closed connection: %v", err)
	}
}

// A node started on a connection that is not up yet reports it up once it connects.
func TestStartBeforeConnected(t *testing.T) {
	ns := startNATS(t)
	url := ns.URL()
	ns.Stop(t)
	nc, err := nats.Connect(url, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	n := brokertest.NewNode(t, "A", New(nc, Options{}))
	if n.Srv.Stats().Broker.Connected {
		t.Fatal("connected before the server runs")
	}
	if !strings.Contains(n.Log.String(), "broker start failed") {
		t.Fatalf("log:\n%s", n.Log.String())
	}
	ns.Start(t)
	brokertest.Eventually(t, "connected", func() bool { return n.Srv.Stats().Broker.Connected })
}

func TestTokenRoundTrip(t *testing.T) {
	for _, topic := range []string{"room", "chat room.1", "a.b.*.>", "%41", "ünïcödé", "tab\tnl\n", "$SYS", "-_~:/=@+,!"} {
		tok := Token(topic)
		if strings.ContainsAny(tok, " \t\r\n.*>") {
			t.Errorf("token %q of %q is not one plain subject token", tok, topic)
		}
		if back, err := Topic(tok); err != nil || back != topic {
			t.Errorf("Topic(Token(%q)) = %q, %v", topic, back, err)
		}
	}
	if Token("a b") == Token("a%20b") {
		t.Error("two topics share a token")
	}
	long := strings.Repeat("x.", 400)
	if tok := Token(long); !strings.HasPrefix(tok, "%H") || len(tok) != 66 {
		t.Errorf("long topic token %q", tok)
	}
	if _, err := Topic("a%2"); err == nil {
		t.Error("Topic accepted a cut escape")
	}
}

func TestPrefixValidated(t *testing.T) {
	for _, p := range []string{"a..b", "a.*", ">", "has space", "a."} {
		fb := New(nil, Options{Prefix: p})
		fb.nc = &nats.Conn{}
		if err := fb.Start(nopNode{}); err == nil || !strings.Contains(err.Error(), "prefix") {
			t.Errorf("prefix %q: Start returned %v", p, err)
		}
	}
}

type nopNode struct{}

func (nopNode) Deliver(string, []byte) {}
func (nopNode) Connected()             {}
func (nopNode) Disconnected(error)     {}
