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
	"log"
	"net/http"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/livepoll/livepoll/bench/internal/pubsub"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

func main() {
	addr := pubsub.Startup()

	a := &app{}
	upgrader := websocket.NewUpgrader()
	upgrader.KeepaliveTime = 0
	upgrader.CheckOrigin = func(*http.Request) bool { return true }
	upgrader.OnOpen(func(c *websocket.Conn) { c.SetSession(&peer{conn: c}) })
	upgrader.OnMessage(a.onMessage)
	upgrader.OnClose(a.onClose)
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.counters.Auths.Add(1)
		if _, err := upgrader.Upgrade(w, r, nil); err != nil {
			return // Upgrade has answered with an HTTP error
		}
	})

	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{addr},
		Handler:                 pubsub.Mux(ws, &a.counters),
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

type peer struct {
	conn    *websocket.Conn
	session pubsub.Session // for the sessions count of /stats

	pubsub.Subscriptions // its topics, kept by app.topics
}

type app struct {
	counters stats.Counters
	topics   pubsub.Registry[*peer]
}

// onMessage runs a message. pubsub.Parse copies what it keeps, so nothing
// refers to nbio's released payload buffer.
func (a *app) onMessage(c *websocket.Conn, _ websocket.MessageType, data []byte) {
	p, _ := c.Session().(*peer)
	if p == nil {
		return
	}
	cmd, ok := pubsub.Parse(data)
	if !ok {
		return // not an envelope: skipped, like mizu's live
	}
	a.topics.Handle(p, cmd, a)
	p.session.Handled(&a.counters)
}

func (a *app) onClose(c *websocket.Conn, _ error) {
	a.counters.Closes.Add(1)
	p, _ := c.Session().(*peer)
	if p == nil {
		return
	}
	a.topics.UnsubscribeAll(p)
	p.session.Closed(&a.counters)
}

// Echo writes data back to p in an "echo" envelope (pubsub.Sender).
func (a *app) Echo(p *peer, data []byte) {
	if b, err := pubsub.Envelope("echo", data); err == nil {
		_ = p.conn.WriteMessage(websocket.TextMessage, b)
	}
}

// Publish encodes the envelope once and writes it to every subscriber.
// WriteMessage does not block (nbio queues what the socket does not take),
// but it can close a connection (write error, MaxWriteBufferSize), and the
// close handler takes the registry's lock: so the subscribers are copied
// out first, as mizu's live does, and written to without the lock.
func (a *app) Publish(topic string, data []byte) {
	subs := a.topics.Snapshot(topic)
	if len(subs) == 0 {
		return
	}
	b, err := pubsub.Envelope(topic, data)
	if err != nil {
		return
	}
	for _, p := range subs {
		_ = p.conn.WriteMessage(websocket.TextMessage, b)
	}
}
