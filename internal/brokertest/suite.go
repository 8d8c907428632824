package brokertest

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Messages is how many messages each publisher sends in RunDelivery.
const Messages = 300

// RunDelivery runs three nodes with subscribers to one topic on each (two on B) and two
// publishers, on A and B, sending Messages messages each at the same time and then an end
// marker. Every client must get every message of each publisher exactly once and in the
// publisher's order (the publisher's own clients get them locally, so the broker must not
// echo them back), then a fence published by C and nothing in between. A topic only C
// subscribes to must not reach A or B. The nodes' Stats must count exactly that.
func RunDelivery(t *testing.T, h Harness) {
	a := NewNode(t, "A", h.NewBroker(t))
	b := NewNode(t, "B", h.NewBroker(t))
	c := NewNode(t, "C", h.NewBroker(t))
	clients := []*Client{
		a.Client(t, "a1", "room"),
		b.Client(t, "b1", "room"),
		b.Client(t, "b2", "room"),
		c.Client(t, "c1", "room"),
	}
	other := c.Client(t, "c-other", "other")
	waitInterest(t, h, "room", 3)
	waitInterest(t, h, "other", 1)

	start := time.Now()
	results := make(chan error, len(clients))
	for _, cl := range clients {
		go func() { results <- readStream(cl, []string{"A", "B"}, Messages) }()
	}
	var wg sync.WaitGroup
	for _, p := range []*Node{a, b} {
		wg.Go(func() {
			for i := range Messages {
				p.Srv.Publish("room", fmt.Appendf(nil, `{"from":%q,"seq":%d}`, p.Name, i))
			}
			p.Srv.Publish("room", fmt.Appendf(nil, `{"from":%q,"end":true}`, p.Name))
		})
	}
	wg.Wait()
	for range clients {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d clients on 3 nodes got 2×%d messages each in %v", len(clients), Messages, time.Since(start).Round(time.Millisecond))

	c.Srv.Publish("room", []byte(`"fence"`))
	for _, cl := range clients {
		cl.Expect(t, "room", `"fence"`)
	}
	a.Srv.Publish("other", []byte(`"only C"`))
	other.Expect(t, "other", `"only C"`)
	for _, cl := range clients {
		cl.Quiet(t, 50*time.Millisecond)
	}

	want := map[*Node][2]uint64{ // published, received
		a: {Messages + 2, Messages + 2},
		b: {Messages + 1, Messages + 2},
		c: {1, 2*(Messages+1) + 1},
	}
	for _, n := range []*Node{a, b, c} {
		st := n.Srv.Stats().Broker
		w := want[n]
		if !st.Connected || st.Published != w[0] || st.Received != w[1] || st.PublishErrors != 0 || st.Disconnects != 0 {
			t.Errorf("node %s: broker stats %+v, want connected, %d published, %d received, no errors", n.Name, st, w[0], w[1])
		}
	}
}

// readStream reads from cl until it has seen the end marker of every publisher in from,
// checking that each publisher's messages 0..n-1 arrive exactly once and in order.
func readStream(cl *Client, from []string, n int) error {
	next := make(map[string]int)
	ended := make(map[string]bool)
	for _, f := range from {
		next[f] = 0
	}
	for len(ended) < len(from) {
		m, err := cl.Next(Wait)
		if err != nil {
			return fmt.Errorf("client %s: after %v (ended %v): %v", cl.Name, next, ended, err)
		}
		var d struct {
			From string
			Seq  int
			End  bool
		}
		if m.Topic != "room" || json.Unmarshal(m.Data, &d) != nil {
			return fmt.Errorf("client %s: unexpected %s %s", cl.Name, m.Topic, m.Data)
		}
		want, known := next[d.From]
		switch {
		case !known:
			return fmt.Errorf("client %s: message from unknown publisher %s", cl.Name, m.Data)
		case ended[d.From]:
			return fmt.Errorf("client %s: %s after %s's end marker (a duplicate?)", cl.Name, m.Data, d.From)
		case d.End && want != n:
			return fmt.Errorf("client %s: end marker of %s after %d messages, want %d", cl.Name, d.From, want, n)
		case d.End:
			ended[d.From] = true
		case d.Seq < want:
			return fmt.Errorf("client %s: %s again (a duplicate), expected %d next", cl.Name, m.Data, want)
		case d.Seq > want:
			return fmt.Errorf("client %s: %s, expected %d next (lost or out of order)", cl.Name, m.Data, want)
		default:
			next[d.From]++
		}
	}
	return nil
}

// RunTopics sends messages across nodes on topics that are awkward for a broker: dots,
// wildcards, spaces, control characters, non-ASCII text, and a topic of a thousand bytes.
func RunTopics(t *testing.T, h Harness) {
	a := NewNode(t, "A", h.NewBroker(t))
	b := NewNode(t, "B", h.NewBroker(t))
	for _, topic := range []string{"a.b > *", "ünï cödé\t%20", "#", strings.Repeat("long.", 200)} {
		c := b.Client(t, "b", topic)
		waitInterest(t, h, topic, 1)
		a.Srv.Publish(topic, []byte(`"x"`))
		c.Expect(t, topic, `"x"`)
		c.Close()
		waitInterest(t, h, topic, 0)
	}
}

// RunInterest checks that a node holds a subscription at the broker exactly while it has
// local subscribers for the topic: one of two subscribers leaving keeps it, the last one
// closing its connection drops it, and after that the node receives nothing for the topic.
func RunInterest(t *testing.T, h Harness) {
	a := NewNode(t, "A", h.NewBroker(t))
	b := NewNode(t, "B", h.NewBroker(t))
	a1 := a.Client(t, "a1", "solo")
	a2 := a.Client(t, "a2", "solo")
	waitInterest(t, h, "solo", 1)
	if got := a.Srv.Stats().Broker.Interest; got != 1 {
		t.Fatalf("node A reports interest in %d topics, want 1", got)
	}

	a1.Command(t, "unsub", "solo")
	time.Sleep(100 * time.Millisecond)
	if got := h.Interest(t, "solo"); got != 1 {
		t.Fatalf("%d subscriptions at the broker after one of two local subscribers left, want 1", got)
	}
	b.Srv.Publish("solo", []byte(`"still here"`))
	a2.Expect(t, "solo", `"still here"`)

	a2.Close()
	waitInterest(t, h, "solo", 0)
	Eventually(t, "node A reporting no interest", func() bool { return a.Srv.Stats().Broker.Interest == 0 })

	probe := a.Client(t, "a3", "probe")
	waitInterest(t, h, "probe", 1)
	before := a.Srv.Stats().Broker.Received
	b.Srv.Publish("solo", []byte(`"nobody"`))
	b.Srv.Publish("probe", []byte(`"probe"`))
	probe.Expect(t, "probe", `"probe"`)
	if got := a.Srv.Stats().Broker.Received - before; got != 1 {
		t.Fatalf("node A received %d messages from the broker, want 1 (the probe): it still gets the topic it left", got)
	}
}

// RunOutage takes the broker server away and brings it back. Meanwhile every node keeps
// delivering its own publishes to its own clients without blocking, reports the loss in
// Stats and its log, takes a new local subscription, and after the restart reconnects,
// restores its interest (including the new subscription) and exchanges messages with the
// other nodes again, each at most once.
func RunOutage(t *testing.T, h Harness) {
	nodes := []*Node{
		NewNode(t, "A", h.NewBroker(t)),
		NewNode(t, "B", h.NewBroker(t)),
		NewNode(t, "C", h.NewBroker(t)),
	}
	a, c := nodes[0], nodes[2]
	clients := make([]*Client, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t, n.Name+"1", "room")
	}
	waitInterest(t, h, "room", len(nodes))
	a.Srv.Publish("room", []byte(`"before"`))
	for _, cl := range clients {
		cl.Expect(t, "room", `"before"`)
	}

	stopped := time.Now()
	h.Stop(t)
	Eventually(t, "every node reporting the broker lost", func() bool {
		for _, n := range nodes {
			if st := n.Srv.Stats().Broker; st.Connected || st.Disconnects != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("outage noticed by every node %v after the broker server stopped", time.Since(stopped).Round(time.Millisecond))

	for i, n := range nodes {
		data := fmt.Appendf(nil, `{"local":%q}`, n.Name)
		began := time.Now()
		n.Srv.Publish("room", data)
		if d := time.Since(began); d > time.Second {
			t.Errorf("node %s: Publish took %v during the outage", n.Name, d)
		}
		clients[i].Expect(t, "room", string(data))
	}
	late := c.Client(t, "C-late", "late")

	restarted := time.Now()
	h.Start(t)
	Eventually(t, "every node reconnected", func() bool {
		for _, n := range nodes {
			if !n.Srv.Stats().Broker.Connected {
				return false
			}
		}
		return true
	})
	t.Logf("every node reconnected %v after the broker server came back", time.Since(restarted).Round(time.Millisecond))
	waitInterest(t, h, "room", len(nodes))
	waitInterest(t, h, "late", 1)
	t.Logf("interest restored %v after the broker server came back", time.Since(restarted).Round(time.Millisecond))

	a.Srv.Publish("room", []byte(`"after"`))
	a.Srv.Publish("late", []byte(`"late"`))
	for i, cl := range clients {
		seen := make(map[string]bool)
		for {
			m, err := cl.Next(Wait)
			if err != nil {
				t.Fatalf("client %s: waiting for the message published after the restart: %v", cl.Name, err)
			}
			if string(m.Data) == `"after"` {
				break
			}
			// Messages published on other nodes during the outage may arrive late (an
			// adapter may have buffered them), but at most once and never this node's own.
			key := string(m.Data)
			if seen[key] || key == fmt.Sprintf(`{"local":%q}`, nodes[i].Name) {
				t.Fatalf("client %s: %s twice", cl.Name, key)
			}
			seen[key] = true
		}
	}
	late.Expect(t, "late", `"late"`)

	for _, n := range nodes {
		st := n.Srv.Stats().Broker
		if !st.Connected || st.Disconnects != 1 {
			t.Errorf("node %s: broker stats %+v after the restart, want connected, 1 disconnect", n.Name, st)
		}
		// The log line follows the state change that Stats shows.
		deadline := time.Now().Add(Wait)
		for n.Log.Count("live: broker connected") < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		down, up := n.Log.Count("live: broker disconnected"), n.Log.Count("live: broker connected")
		if down != 1 || up != 2 {
			t.Errorf("node %s: %d disconnect and %d connect lines in the log, want 1 and 2 (start, reconnect):\n%s", n.Name, down, up, n.Log.String())
		}
	}
	if testing.Verbose() {
		t.Logf("node A's log:\n%s", a.Log.String())
	}
}
