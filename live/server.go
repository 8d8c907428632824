package live

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/poller"
	"github.com/livepoll/livepoll/pool"
)

// Server holds the sessions, the topics and the event loop (a poller goroutine and a pool
// of workers, started with the first connection). All its methods are safe for concurrent
// use. Publish, Subscribe, Unsubscribe and Stats may also be called from OnMessage and
// OnClose; Shutdown and Close may not (they wait for every OnClose to return).
type Server struct {
	opts   Options
	topics *registry
	echo   bool // cmd/echo's mode: messages are echoed unchanged (see internal/rawecho)

	engMu   sync.Mutex // guards starting and stopping eng
	eng     *engine    // set once by start; read without engMu after start returned nil
	stopped bool       // stop ran: no engine starts after it

	mu        sync.Mutex
	sessions  map[*Session]struct{}
	reserved  int                       // upgrades past the MaxSessions check, not yet added
	closed    bool                      // Shutdown or Close was called
	drained   chan struct{}             // closed once closed and the last session has finished
	listeners map[net.Listener]struct{} // being served by Serve
	stopOnce  sync.Once
	spreading chan struct{}  // closed to cut a spread Shutdown short
	spreadWG  sync.WaitGroup // the spreading goroutine

	closingMu sync.Mutex
	closing   map[*Session]int64 // sessions in their closing handshake → its end (unix nanoseconds)

	keep     wheel          // keepalive schedule
	throttle throttleList   // sessions waiting for their rate limit
	upgrades upgradeLimiter // MaxUpgradeRate

	broker *brokerLink // nil without Options.Broker

	stats counters
}

// engine is the event loop shared by a Server's sessions.
type engine struct {
	poll *poller.Poller // nil where the platform has no poller: every session is blocking
	pool *pool.Pool
	stop chan struct{}
	done chan struct{} // the sweeper exited
	// rings lend io_uring rings to fan-out flush batches (live/fanout_ring.go).
	rings ringPool
}

// New returns a server configured by opts.
func New(opts Options) *Server {
	srv := &Server{
		opts:     opts.withDefaults(),
		topics:   newRegistry(),
		sessions: make(map[*Session]struct{}),
		closing:  make(map[*Session]int64),
		drained:  make(chan struct{}),
	}
	if srv.opts.Broker != nil {
		srv.broker = newBrokerLink(srv, srv.opts.Broker, srv.opts.Logger)
		srv.topics.interest = srv.broker.touch
	}
	return srv
}

// Handler returns the http.Handler that upgrades requests to WebSocket sessions. Mount it
// on any router (net/http, mizu, chi...); it hijacks through http.ResponseController, so
// wrappers that implement Unwrap work.
func (srv *Server) Handler() http.Handler { return http.HandlerFunc(srv.serveHTTP) }

// Publish sends data to every session subscribed to topic, as {"topic":topic,"data":data}.
// The frame is encoded once and shared by all subscribers; Publish writes it to each socket
// that takes it at once and queues it for the others, so it never blocks on a slow client
// (one whose queue is full is closed with ErrQueueFull). data must be valid JSON or the
// message is dropped (and counted), as mizu's json.Marshal drops it. An empty topic is
// ignored. Publish does not keep data. With a Broker, the message then goes to the other
// nodes too.
func (srv *Server) Publish(topic string, data []byte) {
	if topic == "" {
		return
	}
	checked, valid := srv.publishLocal(topic, data)
	if srv.broker != nil && (valid || !checked && validJSON(data)) {
		srv.broker.publish(topic, data)
	}
}

// publishLocal delivers to this node's subscribers. checked reports whether data was
// encoded (it is not when nobody here subscribes), valid whether it was valid JSON. The
// subscribers are copied out under the topic's read lock, which is released before any
// write: a slow socket never holds up subscribes to this topic, nor lookups of others.
func (srv *Server) publishLocal(topic string, data []byte) (checked, valid bool) {
	subs := getSubscribers()
	defer putSubscribers(subs)
	tjson := srv.topics.snapshot(topic, subs)
	if len(subs.list) == 0 {
		return false, false
	}
	f, err := encodeFrame(tjson, data)
	if err != nil {
		srv.stats.dropped.Add(1)
		return true, false
	}
	srv.stats.messagesOut.Add(uint64(len(subs.list)))
	srv.deliverAll(subs.list, f)
	f.Release()
	return true, true
}

// Subscribe adds s to topic. It does nothing for a nil session, an empty topic, or a
// session that is closing.
func (srv *Server) Subscribe(s *Session, topic string) {
	if s == nil || topic == "" || s.srv != srv {
		return
	}
	s.subscribe(topic)
}

// Unsubscribe removes s from topic.
func (srv *Server) Unsubscribe(s *Session, topic string) {
	if s == nil || topic == "" || s.srv != srv {
		return
	}
	s.unsubscribe(topic)
}

// start starts the event loop once. A failure (no descriptor left for the poller, say) is
// returned and the next call tries again, so a process that ran out of descriptors at its
// first connection recovers once some are freed.
func (srv *Server) start() error {
	srv.engMu.Lock()
	defer srv.engMu.Unlock()
	if srv.eng != nil {
		return nil
	}
	if srv.stopped {
		return ErrServerClosed
	}
	p, err := poller.New()
	if err != nil && !errors.Is(err, poller.ErrUnsupported) {
		return err
	}
	srv.eng = &engine{
		poll: p,
		pool: pool.New(srv.opts.MaxWorkers, 10*time.Second),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	srv.eng.rings.max = min(4*runtime.GOMAXPROCS(0), 16) // one per eager worker (pool.New), at most 16 (~70 KiB and a descriptor each)
	go srv.sweep()
	return nil
}

// reserve admits one upgrade: it fails with 503 once the server is closing or holds
// MaxSessions sessions (counting upgrades already admitted).
func (srv *Server) reserve() (ok bool, why string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	switch {
	case srv.closed:
		return false, "server closing"
	case srv.opts.MaxSessions > 0 && len(srv.sessions)+srv.reserved >= srv.opts.MaxSessions:
		return false, "too many sessions"
	}
	srv.reserved++
	return true, ""
}

// unreserve gives back an admission whose upgrade failed.
func (srv *Server) unreserve() {
	srv.mu.Lock()
	srv.reserved--
	srv.mu.Unlock()
}

// add turns an admission into a registered session; it fails once the server is closing.
func (srv *Server) add(s *Session) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.reserved--
	if srv.closed {
		return false
	}
	srv.sessions[s] = struct{}{}
	return true
}

// forget drops a finished session.
func (srv *Server) forget(s *Session) {
	srv.closingMu.Lock()
	delete(srv.closing, s)
	srv.closingMu.Unlock()
	srv.mu.Lock()
	delete(srv.sessions, s)
	srv.noteDrainedLocked()
	srv.mu.Unlock()
}

func (srv *Server) noteDrainedLocked() {
	if srv.closed && len(srv.sessions) == 0 && srv.drained != nil {
		close(srv.drained)
		srv.drained = nil
	}
}

func (srv *Server) closingDown() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.closed
}

// watchClosing gives a session whose close frame is out until deadline to see the client
// close the connection; the sweeper finishes it after that.
func (srv *Server) watchClosing(s *Session, deadline time.Time) {
	srv.closingMu.Lock()
	srv.closing[s] = deadline.UnixNano()
	srv.closingMu.Unlock()
}

// sweepInterval is the resolution of closing-handshake timeouts.
const sweepInterval = 100 * time.Millisecond

// sweep ends closing handshakes that ran out of time and runs the keepalive wheel. It
// visits closing sessions and the sessions whose keepalive second has come, never all.
func (srv *Server) sweep() {
	defer close(srv.eng.done)
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	var expired, due []*Session
	for {
		select {
		case <-srv.eng.stop:
			return
		case now := <-tick.C:
			due = srv.keep.due(now.Unix(), due)
			if !srv.closingDown() { // shutting down: no more pings or timeouts
				for _, s := range due {
					srv.checkAlive(s, now)
				}
			}
			clear(due)
			due = srv.resumeThrottled(now, due[:0])
			clear(due)
			due = due[:0]

			srv.closingMu.Lock()
			for s, deadline := range srv.closing {
				if now.UnixNano() > deadline {
					delete(srv.closing, s)
					expired = append(expired, s)
				}
			}
			srv.closingMu.Unlock()
			for i, s := range expired {
				s.raise(workFinish)
				expired[i] = nil
			}
			expired = expired[:0]
		}
	}
}

// Shutdown closes the server gracefully: new upgrades get 503, every session is sent
// close code 1001 (or Options.ShutdownCode; OnClose gets ErrServerClosed) after what is
// already queued for it — spread over Options.ShutdownWindow if set — and Shutdown waits
// until every session has finished its closing handshake and OnClose has returned; then it
// stops the event loop's goroutines and returns nil. If ctx ends first it returns
// ctx.Err() and the sessions go on closing; call Close to end them at once. Safe for
// concurrent use; it must not be called from OnMessage or OnClose.
func (srv *Server) Shutdown(ctx context.Context) error {
	drained := srv.closeAll(false)
	select {
	case <-drained:
		srv.stop()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the server at once: new upgrades get 503, every session is sent close code
// 1001 (or Options.ShutdownCode) if its socket takes it and its socket is closed without
// waiting for the client; Close returns when every OnClose has returned and the event
// loop's goroutines have stopped (an OnMessage that never returns keeps it waiting). It
// must not be called from OnMessage or OnClose.
func (srv *Server) Close() error {
	<-srv.closeAll(true)
	srv.stop()
	return nil
}

// closeAll marks the server closed, starts closing every session (finishing them at once
// when now is set; spread over ShutdownWindow otherwise) and returns a channel closed when
// the last one has finished.
func (srv *Server) closeAll(now bool) <-chan struct{} {
	srv.mu.Lock()
	srv.closed = true
	drained := srv.drained
	if drained == nil {
		drained = make(chan struct{})
		close(drained)
	}
	sessions := make([]*Session, 0, len(srv.sessions))
	for s := range srv.sessions {
		sessions = append(sessions, s)
	}
	for ln := range srv.listeners {
		_ = ln.Close()
	}
	srv.noteDrainedLocked()
	if now && srv.spreading != nil {
		close(srv.spreading) // a spread Shutdown: the rest close now
		srv.spreading = nil
	}
	spread := !now && srv.opts.ShutdownWindow > 0 && len(sessions) > 1 && srv.spreading == nil
	var cut chan struct{}
	if spread {
		cut = make(chan struct{})
		srv.spreading = cut
	}
	srv.mu.Unlock()

	if spread {
		srv.spreadCloses(sessions, cut)
		return drained
	}
	for _, s := range sessions {
		srv.closeForShutdown(s)
		if now {
			s.raise(workFinish)
		}
	}
	return drained
}

func (srv *Server) closeForShutdown(s *Session) {
	s.closeWith(ErrServerClosed, ws.StatusCode(srv.opts.ShutdownCode), "server shutting down")
}

// spreadCloses closes sessions in random order at random moments over ShutdownWindow
// (sorted uniform draws, so the closes per second stay even), from one goroutine that
// Close cuts short by closing cut.
func (srv *Server) spreadCloses(sessions []*Session, cut <-chan struct{}) {
	rand.Shuffle(len(sessions), func(i, j int) { sessions[i], sessions[j] = sessions[j], sessions[i] })
	window := srv.opts.ShutdownWindow
	at := make([]time.Duration, len(sessions))
	for i := range at {
		at[i] = rand.N(window)
	}
	slices.Sort(at)
	srv.spreadWG.Add(1)
	go func() {
		defer srv.spreadWG.Done()
		start := time.Now()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i, s := range sessions {
			if wait := at[i] - time.Since(start); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-cut:
					return
				}
			}
			srv.closeForShutdown(s)
		}
	}()
}

// stop ends the event loop's goroutines once; no engine starts after it.
func (srv *Server) stop() {
	srv.stopOnce.Do(func() {
		srv.mu.Lock()
		if srv.spreading != nil {
			close(srv.spreading) // every session has finished: nothing is left to spread
			srv.spreading = nil
		}
		srv.mu.Unlock()
		srv.spreadWG.Wait()
		if srv.broker != nil {
			srv.broker.close()
		}
		srv.engMu.Lock()
		srv.stopped = true
		srv.engMu.Unlock()
		if srv.eng != nil {
			close(srv.eng.stop)
			<-srv.eng.done
			srv.eng.pool.Close()
			srv.eng.rings.close()
			if srv.eng.poll != nil {
				_ = srv.eng.poll.Close()
			}
		}
	})
}
