// Command gorilla is the benchmark pub/sub app of servers/mizu (same
// envelope, same messages, same /stats) on github.com/gorilla/websocket,
// written the way gorilla's chat example is: a read goroutine and a writer
// goroutine per connection, the writer draining a buffered channel of 256.
// A client whose channel is full is closed, as mizu's live does.
//
// Settings that differ from gorilla's defaults:
//   - Upgrader.WriteBufferPool is a sync.Pool: gorilla's docs recommend a
//     pool when there are many connections with a modest volume of writes;
//     without it every connection keeps a 4 KiB write buffer for life.
//     (Publish goes out as a PreparedMessage, which is written straight from
//     its cached frame and needs no write buffer at all.)
//   - Upgrader.CheckOrigin accepts every origin, as mizu's live does when
//     no origins are configured (gorilla's default rejects cross-origin
//     requests; the benchmark clients send no Origin anyway).
//
// Left at their defaults, as in mizu's app: no read or write deadlines and
// no ping/pong heartbeat (the chat example has one; this app has none),
// ReadBufferSize 0 (the HTTP server's 4 KiB reader is reused), no read
// limit, no compression.
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

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/bench/internal/proc"
	"github.com/livepoll/livepoll/bench/internal/stats"
)

// queueSize is the per-connection send queue, as in mizu's live (and in
// gorilla's chat example).
const queueSize = 256

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

	a := &app{topics: make(map[string]map[*client]struct{})}
	upgrader := websocket.Upgrader{
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true },
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		a.counters.Auths.Add(1)
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered with an HTTP error
		}
		c := &client{conn: conn, send: make(chan *websocket.PreparedMessage, queueSize), done: make(chan struct{})}
		go a.writePump(c)
		go a.readPump(c)
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

type client struct {
	conn   *websocket.Conn
	send   chan *websocket.PreparedMessage
	done   chan struct{} // closed once, by shutdown
	once   sync.Once
	state  atomic.Int32
	topics map[string]struct{} // guarded by app.mu
}

// shutdown stops the writer and closes the socket, which ends the reader.
func (c *client) shutdown() {
	c.once.Do(func() {
		close(c.done)
		_ = c.conn.Close()
	})
}

// enqueue hands pm to the writer without blocking; a client whose queue is
// full is closed.
func (c *client) enqueue(pm *websocket.PreparedMessage) {
	select {
	case <-c.done:
		return
	default:
	}
	select {
	case c.send <- pm:
	default:
		c.shutdown()
	}
}

type app struct {
	counters stats.Counters
	mu       sync.RWMutex
	topics   map[string]map[*client]struct{}
}

func (a *app) readPump(c *client) {
	defer func() {
		c.shutdown()
		a.unsubscribeAll(c)
		a.counters.Closes.Add(1)
		if c.state.Swap(stateClosed) == stateCounted {
			a.counters.Sessions.Add(-1)
		}
	}()
	for {
		// ReadMessage answers pings and close frames itself.
		_, p, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var env envelope
		if json.Unmarshal(p, &env) != nil {
			continue // not an envelope: skipped, like mizu's live
		}
		a.handle(c, env)
		if c.state.CompareAndSwap(stateNew, stateCounted) {
			a.counters.Sessions.Add(1)
		}
	}
}

func (a *app) writePump(c *client) {
	for {
		select {
		case pm := <-c.send:
			if err := c.conn.WritePreparedMessage(pm); err != nil {
				c.shutdown()
				return
			}
		case <-c.done:
			return
		}
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

func (a *app) handle(c *client, env envelope) {
	switch env.Topic {
	case "subscribe", "unsubscribe", "publish":
		var td topicData
		if json.Unmarshal(env.Data, &td) != nil || td.Topic == "" {
			return
		}
		switch env.Topic {
		case "subscribe":
			a.subscribe(c, td.Topic)
		case "unsubscribe":
			a.unsubscribe(c, td.Topic)
		default:
			a.publish(td.Topic, td.Data)
		}
	case "echo":
		if pm := prepare("echo", env.Data); pm != nil {
			c.enqueue(pm)
		}
	}
}

// prepare encodes the envelope once as a PreparedMessage, gorilla's type
// for sending one payload to many connections.
func prepare(topic string, data json.RawMessage) *websocket.PreparedMessage {
	b, err := json.Marshal(envelope{Topic: topic, Data: data})
	if err != nil {
		return nil
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		return nil
	}
	return pm
}

func (a *app) subscribe(c *client, topic string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	subs := a.topics[topic]
	if subs == nil {
		subs = make(map[*client]struct{})
		a.topics[topic] = subs
	}
	subs[c] = struct{}{}
	if c.topics == nil {
		c.topics = make(map[string]struct{})
	}
	c.topics[topic] = struct{}{}
}

func (a *app) unsubscribe(c *client, topic string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.remove(c, topic)
	delete(c.topics, topic)
}

func (a *app) unsubscribeAll(c *client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for topic := range c.topics {
		a.remove(c, topic)
	}
	c.topics = nil
}

// remove drops c from topic's subscribers; a.mu must be held.
func (a *app) remove(c *client, topic string) {
	if subs := a.topics[topic]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(a.topics, topic)
		}
	}
}

// publish encodes the envelope once and queues the same PreparedMessage for
// every subscriber; enqueue never blocks, so the read lock is held throughout.
func (a *app) publish(topic string, data json.RawMessage) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	subs := a.topics[topic]
	if len(subs) == 0 {
		return
	}
	pm := prepare(topic, data)
	if pm == nil {
		return
	}
	for c := range subs {
		c.enqueue(pm)
	}
}
