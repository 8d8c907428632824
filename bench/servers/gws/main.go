// Command gws is the benchmark pub/sub app of servers/mizu (same envelope,
// same messages, same /stats) on github.com/lxzan/gws, set up as gws's
// README ("Best Practice") does under net/http: the Upgrader in an
// http.Handler, then `go socket.ReadLoop()` (one goroutine per connection,
// the README's advice when the HTTP server is net/http), event callbacks.
// Publish encodes the envelope once and sends it through a gws.Broadcaster,
// which builds the frame once and queues it on every subscriber's
// asynchronous write queue (a writer goroutine exists only while a queue is
// not empty).
//
// Settings that differ from gws's defaults:
//   - ServerOption.Recovery = gws.Recovery, as in the README's best
//     practice: a panic in a callback is logged instead of killing the
//     process.
//   - ServerOption.Authorize counts the handshake (stats Auths), like
//     mizu's OnAuth; it accepts everyone.
//
// Left at their defaults, departing from the README's best-practice snippet:
//   - ParallelEnabled stays false. With it, gws handles one connection's
//     messages on up to ParallelGolimit goroutines at once, so they can run
//     out of order; this app needs them in order (a subscribe before the
//     publish that follows it, the publisher's sequence numbers), as mizu's
//     live delivers them. gws v1.8.9 has no ReadAsync option.
//   - PermessageDeflate stays off unless -compress: then Enabled, gws's
//     defaults otherwise (no context takeover either way, its threshold and
//     level); the Broadcaster compresses a message once for all subscribers.
//   - No SetDeadline heartbeat in OnOpen/OnPing: this app has none.
//
// gws's write queue has no bound, so unlike mizu's live (256 messages, then
// close) a client that stops reading is never closed for being slow; what
// it cannot take piles up in the server's memory.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/lxzan/gws"

	"github.com/livepoll/livepoll/bench/internal/pubsub"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

func main() {
	compress := flag.Bool("compress", false, "negotiate permessage-deflate with clients that offer it")
	listen := pubsub.Startup()

	a := &app{}
	upgrader := gws.NewUpgrader(a, &gws.ServerOption{
		PermessageDeflate: gws.PermessageDeflate{Enabled: *compress},
		Recovery:          gws.Recovery,
		Authorize: func(*http.Request, gws.SessionStorage) bool {
			a.counters.Auths.Add(1)
			return true
		},
	})
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		socket, err := upgrader.Upgrade(w, r)
		if err != nil {
			return // Upgrade has answered with an HTTP error
		}
		socket.Session().Store(peerKey, &peer{conn: socket})
		go socket.ReadLoop()
	})
	log.Fatal(listen.ListenAndServe(pubsub.Mux(ws, &a.counters)))
}

const peerKey = "peer" // the *peer in a connection's gws session storage

type peer struct {
	conn    *gws.Conn
	session pubsub.Session // for the sessions count of /stats

	pubsub.Subscriptions // its topics, kept by app.topics
}

func peerOf(socket *gws.Conn) *peer {
	v, _ := socket.Session().Load(peerKey)
	p, _ := v.(*peer)
	return p
}

// app is the gws.Event handler.
type app struct {
	gws.BuiltinEventHandler // OnOpen, OnPing (answers with a pong), OnPong

	counters stats.Counters
	topics   pubsub.Registry[*peer]
}

// OnMessage runs a message. pubsub.Parse copies what it keeps, so nothing
// refers to the gws message buffer released after OnMessage.
func (a *app) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	p := peerOf(socket)
	if p == nil {
		return
	}
	cmd, ok := pubsub.Parse(message.Bytes())
	if !ok {
		return // not an envelope: skipped, like mizu's live
	}
	a.topics.Handle(p, cmd, a)
	p.session.Handled(&a.counters)
}

func (a *app) OnClose(socket *gws.Conn, _ error) {
	a.counters.Closes.Add(1)
	p := peerOf(socket)
	if p == nil {
		return
	}
	a.topics.UnsubscribeAll(p)
	p.session.Closed(&a.counters)
}

// Echo writes data back to p in an "echo" envelope (pubsub.Sender).
func (a *app) Echo(p *peer, data []byte) {
	if b, err := pubsub.Envelope("echo", data); err == nil {
		_ = p.conn.WriteMessage(gws.OpcodeText, b)
	}
}

// Publish encodes the envelope once, at the first subscriber, and
// broadcasts it. Broadcast only queues the frame (a write error closes the
// connection on the queue's goroutine), so the read lock is held throughout.
func (a *app) Publish(topic string, data []byte) {
	var bc *gws.Broadcaster
	for p := range a.topics.Subscribers(topic) {
		if bc == nil {
			b, err := pubsub.Envelope(topic, data)
			if err != nil {
				return
			}
			bc = gws.NewBroadcaster(gws.OpcodeText, b)
		}
		_ = bc.Broadcast(p.conn)
	}
	if bc != nil {
		_ = bc.Close()
	}
}
