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
//     An echo reply goes out through Conn.WriteMessage, gorilla's ordinary
//     write (it borrows a buffer from the pool for the frame). A publish goes
//     out as one PreparedMessage for all subscribers, the type gorilla's docs
//     offer for sending one payload to many connections: its frame is built
//     once and written straight from that cache.
//   - Upgrader.CheckOrigin accepts every origin, as mizu's live does when
//     no origins are configured (gorilla's default rejects cross-origin
//     requests; the benchmark clients send no Origin anyway).
//
// Left at their defaults, as in mizu's app: no read or write deadlines and
// no ping/pong heartbeat (the chat example has one; this app has none),
// ReadBufferSize 0 (the HTTP server's 4 KiB reader is reused), no read
// limit, no compression unless -compress: then Upgrader.EnableCompression
// (permessage-deflate, no context takeover, gorilla's only mode); a
// PreparedMessage compresses once for all subscribers that negotiated it.
package main

import (
	"flag"
	"log"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/bench/internal/pubsub"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

// queueSize is the per-connection send queue, as in mizu's live (and in
// gorilla's chat example).
const queueSize = 256

func main() {
	compress := flag.Bool("compress", false, "negotiate permessage-deflate with clients that offer it")
	listen := pubsub.Startup()

	a := &app{}
	upgrader := websocket.Upgrader{
		WriteBufferPool:   &sync.Pool{},
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: *compress,
	}
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.counters.Auths.Add(1)
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered with an HTTP error
		}
		c := &client{conn: conn, send: make(chan outgoing, queueSize), done: make(chan struct{})}
		go a.writePump(c)
		go a.readPump(c)
	})
	log.Fatal(listen.ListenAndServe(pubsub.Mux(ws, &a.counters)))
}

// outgoing is one queued message: a reply to this connection alone (data)
// or a frame prepared once for every subscriber of a topic (pm).
type outgoing struct {
	data []byte
	pm   *websocket.PreparedMessage
}

// write sends m; gorilla allows one writer per connection, so only the
// connection's writePump calls it.
func (m outgoing) write(conn *websocket.Conn) error {
	if m.pm != nil {
		return conn.WritePreparedMessage(m.pm)
	}
	return conn.WriteMessage(websocket.TextMessage, m.data)
}

type client struct {
	conn    *websocket.Conn
	send    chan outgoing
	done    chan struct{} // closed once, by shutdown
	once    sync.Once
	session pubsub.Session // for the sessions count of /stats

	pubsub.Subscriptions // its topics, kept by app.topics
}

// shutdown stops the writer and closes the socket, which ends the reader.
func (c *client) shutdown() {
	c.once.Do(func() {
		close(c.done)
		_ = c.conn.Close()
	})
}

// enqueue hands m to the writer without blocking; a client whose queue is
// full is closed.
func (c *client) enqueue(m outgoing) {
	select {
	case <-c.done:
		return
	default:
	}
	select {
	case c.send <- m:
	default:
		c.shutdown()
	}
}

type app struct {
	counters stats.Counters
	topics   pubsub.Registry[*client]
}

func (a *app) readPump(c *client) {
	defer func() {
		c.shutdown()
		a.topics.UnsubscribeAll(c)
		a.counters.Closes.Add(1)
		c.session.Closed(&a.counters)
	}()
	for {
		// ReadMessage answers pings and close frames itself.
		_, p, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		cmd, ok := pubsub.Parse(p)
		if !ok {
			continue // not an envelope: skipped, like mizu's live
		}
		a.topics.Handle(c, cmd, a)
		c.session.Handled(&a.counters)
	}
}

func (a *app) writePump(c *client) {
	for {
		select {
		case m := <-c.send:
			if err := m.write(c.conn); err != nil {
				c.shutdown()
				return
			}
		case <-c.done:
			return
		}
	}
}

// Echo queues data for c in an "echo" envelope (pubsub.Sender); the writer
// sends it with WriteMessage. It is queued rather than written here because
// publishes to c are written by the writer goroutine, and gorilla allows only
// one concurrent writer.
func (a *app) Echo(c *client, data []byte) {
	if b, err := pubsub.Envelope("echo", data); err == nil {
		c.enqueue(outgoing{data: b})
	}
}

// prepare encodes the envelope once as a PreparedMessage, gorilla's type
// for sending one payload to many connections.
func prepare(topic string, data []byte) *websocket.PreparedMessage {
	b, err := pubsub.Envelope(topic, data)
	if err != nil {
		return nil
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		return nil
	}
	return pm
}

// Publish encodes the envelope once, at the first subscriber, and queues the
// same PreparedMessage for every subscriber; enqueue never blocks, so the
// read lock is held throughout (pubsub.Sender).
func (a *app) Publish(topic string, data []byte) {
	var pm *websocket.PreparedMessage
	for c := range a.topics.Subscribers(topic) {
		if pm == nil {
			if pm = prepare(topic, data); pm == nil {
				return
			}
		}
		c.enqueue(outgoing{pm: pm})
	}
}
