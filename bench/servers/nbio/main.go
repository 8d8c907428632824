// Command nbio is the benchmark pub/sub app of servers/mizu (same envelope,
// same messages, same /stats) on github.com/lesismal/nbio: an nbhttp.Engine
// (nbio's own HTTP server on its epoll loop) serves /ws, /stats and
// /debug/pprof/, and nbio's websocket.Upgrader delivers messages to
// OnMessage callbacks, without a goroutine per connection.
//
// Settings that differ from nbio's defaults, as in nbio's own benchmark
// server (lesismal/go-websocket-benchmark, frameworks/nbio_mod_nonblocking):
//   - Config.IOMod = IOModNonBlocking: every connection is served by the
//     poller (this is also the default; stated because it is the point).
//   - Config.ReleaseWebsocketPayload = true: the payload buffer goes back to
//     nbio's pool after OnMessage returns (the app keeps only copies).
//   - Upgrader.KeepaliveTime = 0: no read deadline on an upgraded
//     connection. The default (120 s, re-armed after every message) would
//     close idle clients, which mizu's app never does; nbio's benchmark
//     server clears the deadline after Upgrade for the same reason.
//   - Config.KeepaliveTime = 24 h (default 120 s), the idle timeout of a
//     plain HTTP connection. nbhttp v1.6.7 arms it on every accepted
//     connection right *after* registering it with the poller
//     (AddConnNonTLSNonBlocking), so when the handshake is handled first,
//     it lands after Upgrade has cleared the deadline and closes that idle
//     WebSocket ("read timeout") 120 s after accept. Seen in memslope under
//     load: 4 of 6000 idle clients closed; with 3 s instead of 120 s, a few
//     per run. 24 h keeps such a stray deadline out of any benchmark run.
//   - Config.MaxWriteBufferSize = 1 MiB: a connection whose unsent data
//     (above what the kernel holds) exceeds it is closed by nbio. This is
//     nbio's form of mizu's rule "close a client whose send queue (256
//     messages) is full"; nbio counts bytes: 256 × 4 KiB.
//   - Upgrader.CheckOrigin accepts every origin, as mizu's live does when no
//     origins are configured (the benchmark clients send no Origin anyway).
//
// Left at their defaults: NPoller (NumCPU/4, at least 1), level-triggered
// epoll, reading in the poller (AsyncReadInPoller false), the message
// handler pool (OnMessage runs there, one job at a time per connection, in
// order), MaxLoad, no compression.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/livepoll/livepoll/bench/internal/proc"
	"github.com/livepoll/livepoll/bench/internal/stats"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: never); a safety net for benchmark runs")
	flag.Parse()
	if _, err := proc.RaiseNOFILE(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() {
			log.Printf("exit-after %v reached", *exitAfter)
			os.Exit(3)
		})
	}

	a := &app{topics: make(map[string]map[*peer]struct{})}
	upgrader := websocket.NewUpgrader()
	upgrader.KeepaliveTime = 0
	upgrader.CheckOrigin = func(*http.Request) bool { return true }
	upgrader.OnOpen(func(c *websocket.Conn) { c.SetSession(&peer{conn: c}) })
	upgrader.OnMessage(a.onMessage)
	upgrader.OnClose(a.onClose)

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		a.counters.Auths.Add(1)
		if _, err := upgrader.Upgrade(w, r, nil); err != nil {
			return // Upgrade has answered with an HTTP error
		}
	})
	mux.Handle("GET /stats", stats.Handler(&a.counters))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // goroutine dumps when a run goes wrong

	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{*addr},
		Handler:                 mux,
		IOMod:                   nbhttp.IOModNonBlocking,
		ReleaseWebsocketPayload: true,
		MaxWriteBufferSize:      1 << 20,
		KeepaliveTime:           24 * time.Hour,
	})
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	engine.Wait()
}

// Session states for stats.Counters.Sessions: counted after the first
// handled message, uncounted at close (whichever comes first wins).
const (
	stateNew int32 = iota
	stateCounted
	stateClosed
)

type peer struct {
	conn   *websocket.Conn
	state  atomic.Int32
	topics map[string]struct{} // guarded by app.mu
}

type app struct {
	counters stats.Counters
	mu       sync.RWMutex
	topics   map[string]map[*peer]struct{}
}

func (a *app) onMessage(c *websocket.Conn, _ websocket.MessageType, data []byte) {
	p, _ := c.Session().(*peer)
	if p == nil {
		return
	}
	var env envelope
	if json.Unmarshal(data, &env) != nil {
		return // not an envelope: skipped, like mizu's live
	}
	a.handle(p, env)
	if p.state.CompareAndSwap(stateNew, stateCounted) {
		a.counters.Sessions.Add(1)
	}
}

func (a *app) onClose(c *websocket.Conn, _ error) {
	a.counters.Closes.Add(1)
	p, _ := c.Session().(*peer)
	if p == nil {
		return
	}
	a.unsubscribeAll(p)
	if p.state.Swap(stateClosed) == stateCounted {
		a.counters.Sessions.Add(-1)
	}
}

// envelope is the live envelope, encoded like mizu's (no omitempty here).
type envelope struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

type topicData struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// handle runs a message. data and its copies in env are the app's own:
// json.Unmarshal copies into json.RawMessage, so nothing refers to nbio's
// released payload buffer.
func (a *app) handle(p *peer, env envelope) {
	switch env.Topic {
	case "subscribe", "unsubscribe", "publish":
		var td topicData
		if json.Unmarshal(env.Data, &td) != nil || td.Topic == "" {
			return
		}
		switch env.Topic {
		case "subscribe":
			a.subscribe(p, td.Topic)
		case "unsubscribe":
			a.unsubscribe(p, td.Topic)
		default:
			a.publish(td.Topic, td.Data)
		}
	case "echo":
		if b, err := json.Marshal(envelope{Topic: "echo", Data: env.Data}); err == nil {
			_ = p.conn.WriteMessage(websocket.TextMessage, b)
		}
	}
}

func (a *app) subscribe(p *peer, topic string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	subs := a.topics[topic]
	if subs == nil {
		subs = make(map[*peer]struct{})
		a.topics[topic] = subs
	}
	subs[p] = struct{}{}
	if p.topics == nil {
		p.topics = make(map[string]struct{})
	}
	p.topics[topic] = struct{}{}
}

func (a *app) unsubscribe(p *peer, topic string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.remove(p, topic)
	delete(p.topics, topic)
}

func (a *app) unsubscribeAll(p *peer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for topic := range p.topics {
		a.remove(p, topic)
	}
	p.topics = nil
}

// remove drops p from topic's subscribers; a.mu must be held.
func (a *app) remove(p *peer, topic string) {
	if subs := a.topics[topic]; subs != nil {
		delete(subs, p)
		if len(subs) == 0 {
			delete(a.topics, topic)
		}
	}
}

// publish encodes the envelope once and writes it to every subscriber.
// WriteMessage does not block (nbio queues what the socket does not take),
// but it can close a connection (write error, MaxWriteBufferSize), and the
// close handler takes a.mu: so the subscribers are copied out first, as
// mizu's live does, and written to without the lock.
func (a *app) publish(topic string, data json.RawMessage) {
	a.mu.RLock()
	subs := make([]*peer, 0, len(a.topics[topic]))
	for p := range a.topics[topic] {
		subs = append(subs, p)
	}
	a.mu.RUnlock()
	if len(subs) == 0 {
		return
	}
	b, err := json.Marshal(envelope{Topic: topic, Data: data})
	if err != nil {
		return
	}
	for _, p := range subs {
		_ = p.conn.WriteMessage(websocket.TextMessage, b)
	}
}
