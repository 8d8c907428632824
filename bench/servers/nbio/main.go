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
// Publish spreads its writes over one writer goroutine per CPU (GOMAXPROCS),
// each serving a fixed share of the connections, the way nbio's author
// suggests broadcasting to many connections (lesismal/nbio issue 152:
// connections bucketed over NumCPU hubs, each hub writing on its own
// goroutine). nbio's WriteMessage does not block, but framing and the
// write(2) of 10,000 sockets on the one publishing goroutine would use one
// core while the other servers' writes run on all of them.
//
// With -cert and -key the engine serves wss:// on -addr with nbhttp's own TLS
// (Config.AddrsTLS and Config.TLSConfig, as nbio's TLS examples and autobahn server
// do): nbio's fork of crypto/tls (github.com/lesismal/llib/std/crypto/tls), driven by
// the poller, non-blocking, no goroutine per connection; ALPN http/1.1. /stats is then
// on -stats-addr, a plain address of the same engine.
//
// Left at their defaults: NPoller (NumCPU/4, at least 1), level-triggered
// epoll, reading in the poller (AsyncReadInPoller false), the message
// handler pool (OnMessage runs there, one job at a time per connection, in
// order), MaxLoad, no compression unless -compress: then
// Upgrader.EnableCompression(true) (nbio's default level); each WriteMessage
// compresses for its own connection, nbio having no frame shared by many.
package main

import (
	"flag"
	"log"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/livepoll/livepoll/bench/internal/pubsub"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

func main() {
	compress := flag.Bool("compress", false, "negotiate permessage-deflate with clients that offer it")
	listen := pubsub.Startup()

	a := &app{writers: startWriters(runtime.GOMAXPROCS(0))}
	upgrader := websocket.NewUpgrader()
	upgrader.EnableCompression(*compress)
	upgrader.KeepaliveTime = 0
	upgrader.CheckOrigin = func(*http.Request) bool { return true }
	upgrader.OnOpen(func(c *websocket.Conn) { c.SetSession(&peer{conn: c, writer: a.writers.assign()}) })
	upgrader.OnMessage(a.onMessage)
	upgrader.OnClose(a.onClose)
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.counters.Auths.Add(1)
		if _, err := upgrader.Upgrade(w, r, nil); err != nil {
			return // Upgrade has answered with an HTTP error
		}
	})

	conf := nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{listen.Addr},
		Handler:                 pubsub.Mux(ws, &a.counters),
		IOMod:                   nbhttp.IOModNonBlocking,
		ReleaseWebsocketPayload: true,
		MaxWriteBufferSize:      1 << 20,
		KeepaliveTime:           24 * time.Hour,
	}
	if listen.TLS() {
		// wss:// with nbhttp's own TLS: the same engine serves -addr as a TLS address
		// (AddrsTLS, TLSConfig: nbio's fork of crypto/tls, run on the poller) and
		// -stats-addr as a plain one, both with the same handler.
		cert, err := tls.LoadX509KeyPair(listen.CertFile, listen.KeyFile)
		if err != nil {
			log.Fatal(err)
		}
		conf.Addrs, conf.AddrsTLS = []string{listen.StatsAddr}, []string{listen.Addr}
		conf.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	}
	engine := nbhttp.NewEngine(conf)
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	engine.Wait()
}

type peer struct {
	conn    *websocket.Conn
	writer  int            // index of the writer goroutine that sends it publishes
	session pubsub.Session // for the sessions count of /stats

	pubsub.Subscriptions // its topics, kept by app.topics
}

type app struct {
	counters stats.Counters
	topics   pubsub.Registry[*peer]
	writers  *writers
}

// writers are the goroutines that write publishes. A connection always
// belongs to the same writer, whose queue is FIFO, and a publisher's
// messages are handled one at a time in order, so every subscriber receives
// a topic's messages in the order they were published.
type writers struct {
	queues []chan batch
	next   atomic.Uint32 // round-robin assignment of new connections
}

// batch is one published frame for the subscribers one writer serves.
type batch struct {
	frame []byte
	to    []*peer
}

// queueLen bounds each writer's backlog of publishes; a full queue blocks
// the publisher (back-pressure) rather than growing without limit.
const queueLen = 256

func startWriters(n int) *writers {
	w := &writers{queues: make([]chan batch, max(n, 1))}
	for i := range w.queues {
		q := make(chan batch, queueLen)
		w.queues[i] = q
		go func() {
			for b := range q {
				for _, p := range b.to {
					_ = p.conn.WriteMessage(websocket.TextMessage, b.frame)
				}
			}
		}()
	}
	return w
}

func (w *writers) assign() int { return int(w.next.Add(1)-1) % len(w.queues) }

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

// Publish encodes the envelope once and hands each writer goroutine the
// subscribers it serves. WriteMessage does not block (nbio queues what the
// socket does not take), but it can close a connection (write error,
// MaxWriteBufferSize), and the close handler takes the registry's lock: so
// the subscribers are copied out first, as mizu's live does, and written to
// without the lock.
func (a *app) Publish(topic string, data []byte) {
	subs := a.topics.Snapshot(topic)
	if len(subs) == 0 {
		return
	}
	b, err := pubsub.Envelope(topic, data)
	if err != nil {
		return
	}
	shares := make([][]*peer, len(a.writers.queues))
	for _, p := range subs {
		shares[p.writer] = append(shares[p.writer], p)
	}
	for i, to := range shares {
		if len(to) > 0 {
			a.writers.queues[i] <- batch{frame: b, to: to}
		}
	}
}
