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
//   - PermessageDeflate stays off: mizu's live does not compress and the
//     benchmark clients do not offer it.
//   - No SetDeadline heartbeat in OnOpen/OnPing: this app has none.
//
// gws's write queue has no bound, so unlike mizu's live (256 messages, then
// close) a client that stops reading is never closed for being slow; what
// it cannot take piles up in the server's memory.
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

	"github.com/lxzan/gws"

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
	upgrader := gws.NewUpgrader(a, &gws.ServerOption{
		Recovery: gws.Recovery,
		Authorize: func(*http.Request, gws.SessionStorage) bool {
			a.counters.Auths.Add(1)
			return true
		},
	})

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		socket, err := upgrader.Upgrade(w, r)
		if err != nil {
			return // Upgrade has answered with an HTTP error
		}
		socket.Session().Store(peerKey, &peer{conn: socket})
		go socket.ReadLoop()
	})
	mux.Handle("GET /stats", stats.Handler(&a.counters))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // goroutine dumps when a run goes wrong
	log.Fatal(http.ListenAndServe(*addr, mux))
}

// Session states for stats.Counters.Sessions: counted after the first
// handled message, uncounted at close (whichever comes first wins).
const (
	stateNew int32 = iota
	stateCounted
	stateClosed
)

const peerKey = "peer" // the *peer in a connection's gws session storage

type peer struct {
	conn   *gws.Conn
	state  atomic.Int32
	topics map[string]struct{} // guarded by app.mu
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
	mu       sync.RWMutex
	topics   map[string]map[*peer]struct{}
}

func (a *app) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	p := peerOf(socket)
	if p == nil {
		return
	}
	var env envelope
	if json.Unmarshal(message.Bytes(), &env) != nil {
		return // not an envelope: skipped, like mizu's live
	}
	a.handle(p, env)
	if p.state.CompareAndSwap(stateNew, stateCounted) {
		a.counters.Sessions.Add(1)
	}
}

func (a *app) OnClose(socket *gws.Conn, _ error) {
	a.counters.Closes.Add(1)
	p := peerOf(socket)
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

// handle runs a message. json.Unmarshal copies into json.RawMessage, so
// nothing in env refers to the gws message buffer released after OnMessage.
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
			_ = p.conn.WriteMessage(gws.OpcodeText, b)
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

// publish encodes the envelope once and broadcasts it. Broadcast only
// queues the frame (a write error closes the connection on the queue's
// goroutine), so the read lock is held throughout.
func (a *app) publish(topic string, data json.RawMessage) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	subs := a.topics[topic]
	if len(subs) == 0 {
		return
	}
	b, err := json.Marshal(envelope{Topic: topic, Data: data})
	if err != nil {
		return
	}
	bc := gws.NewBroadcaster(gws.OpcodeText, b)
	defer bc.Close()
	for p := range subs {
		_ = bc.Broadcast(p.conn)
	}
}
