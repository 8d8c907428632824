package prometheus_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/livepoll/livepoll/live"
	livepollprom "github.com/livepoll/livepoll/metrics/prometheus"
)

// node is a live.Server with /ws and /metrics on one HTTP server, as an operator mounts it.
type node struct {
	srv  *live.Server
	http *httptest.Server
}

// newNode serves opts with an OnMessage that subscribes a client sending "join" to "room".
func newNode(t *testing.T, opts live.Options) *node {
	t.Helper()
	var srv *live.Server
	opts.Logger = slog.New(slog.DiscardHandler) // broker connects are expected here
	opts.OnMessage = func(ctx context.Context, s *live.Session, topic string, data []byte) {
		if topic == "join" {
			srv.Subscribe(s, "room")
			s.Send(live.Message{Topic: "joined", Data: []byte(`{}`)})
		}
	}
	srv = live.New(opts)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(livepollprom.New(srv, livepollprom.Options{ConstLabels: prometheus.Labels{"server": "test"}}))
	mux := http.NewServeMux()
	mux.Handle("/ws", srv.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	n := &node{srv: srv, http: httptest.NewServer(mux)}
	t.Cleanup(func() {
		srv.Close()
		n.http.Close()
	})
	return n
}

// scrape GETs /metrics and parses the text format into series -> value, dropping the
// server="test" label every series carries.
func (n *node) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(n.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		name := line[:i]
		if !strings.Contains(name, `server="test"`) {
			t.Fatalf("series %s lacks the const label", name)
		}
		name = strings.NewReplacer(`{server="test"}`, "", `server="test",`, "", `,server="test"`, "").Replace(name)
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor scrapes until every series in want has its value, or fails after 5 s.
func (n *node) waitFor(t *testing.T, step string, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := n.scrape(t)
		var diff []string
		for name, v := range want {
			if g, ok := got[name]; !ok || g != v {
				diff = append(diff, fmt.Sprintf("%s = %v, want %v", name, g, v))
			}
		}
		if len(diff) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 5 s:\n%s", step, strings.Join(diff, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (n *node) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(n.http.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read, want %s: %v", want, err)
	}
	if string(got) != want {
		t.Fatalf("read %s, want %s", got, want)
	}
}

// TestScrape follows a server's metrics over HTTP while real WebSocket clients connect,
// subscribe, send, get a message from another node, and leave in two ways.
func TestScrape(t *testing.T) {
	broker := live.NewMemoryBroker()
	n := newNode(t, live.Options{Broker: broker.Node()})
	other := newNode(t, live.Options{Broker: broker.Node()})

	start := n.waitFor(t, "idle", map[string]float64{
		"livepoll_sessions":                               0,
		"livepoll_topics":                                 0,
		"livepoll_subscriptions":                          0,
		"livepoll_broker_connected":                       1,
		`livepoll_sessions_closed_total{reason="normal"}`: 0,
	})
	if fields := leaves(reflect.TypeFor[live.Stats](), "", nil); len(start) != len(fields) {
		t.Errorf("scraped %d series, want %d (one per Stats field):\n%v", len(start), len(fields), start)
	}

	a, b := n.dial(t), n.dial(t)
	n.waitFor(t, "two clients connected", map[string]float64{"livepoll_sessions": 2})

	for _, c := range []*websocket.Conn{a, b} {
		write(t, c, `{"topic":"join","data":{}}`)
		read(t, c, `{"topic":"joined","data":{}}`)
	}
	write(t, a, "not an envelope")
	n.waitFor(t, "both subscribed", map[string]float64{
		"livepoll_topics":                  1,
		"livepoll_subscriptions":           2,
		"livepoll_broker_interest_topics":  1,
		"livepoll_messages_received_total": 3, // a non-envelope counts too
		"livepoll_messages_skipped_total":  1,
		"livepoll_messages_sent_total":     2, // the two "joined" replies
	})

	n.srv.Publish("room", []byte(`{"from":"here"}`))
	other.srv.Publish("room", []byte(`{"from":"there"}`))
	for _, c := range []*websocket.Conn{a, b} {
		read(t, c, `{"topic":"room","data":{"from":"here"}}`)
		read(t, c, `{"topic":"room","data":{"from":"there"}}`)
	}
	got := n.waitFor(t, "published here and there", map[string]float64{
		"livepoll_messages_sent_total":    6,
		"livepoll_broker_published_total": 1,
		"livepoll_broker_received_total":  1,
	})
	n.srv.Publish("room", []byte(`not json`))
	n.waitFor(t, "invalid JSON published", map[string]float64{"livepoll_publish_dropped_total": 1})
	if got["livepoll_read_bytes_total"] <= start["livepoll_read_bytes_total"] ||
		got["livepoll_written_bytes_total"] <= start["livepoll_written_bytes_total"] {
		t.Errorf("bytes did not grow: read %v, written %v", got["livepoll_read_bytes_total"], got["livepoll_written_bytes_total"])
	}

	// a leaves with a close frame, b by dropping the TCP connection.
	if err := a.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	b.UnderlyingConn().Close()
	n.waitFor(t, "both gone", map[string]float64{
		"livepoll_sessions":                               0,
		"livepoll_topics":                                 0,
		"livepoll_subscriptions":                          0,
		`livepoll_sessions_closed_total{reason="normal"}`: 1,
		`livepoll_sessions_closed_total{reason="eof"}`:    1,
		`livepoll_sessions_closed_total{reason="error"}`:  0,
	})
}

// TestScrapeRejected: an upgrade beyond MaxSessions is refused with 503 and counted.
func TestScrapeRejected(t *testing.T) {
	n := newNode(t, live.Options{MaxSessions: 1})
	a := n.dial(t)
	write(t, a, `{"topic":"join","data":{}}`)
	read(t, a, `{"topic":"joined","data":{}}`) // a is registered: the next one is over the cap

	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(n.http.URL, "http")+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second dial: err %v, response %v; want 503", err, resp)
	}
	n.waitFor(t, "one refused", map[string]float64{
		"livepoll_sessions":                1,
		"livepoll_upgrades_rejected_total": 1,
	})
}
