package live

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Broker connects the Servers of a cluster, one per node, so that Publish on any node
// reaches the subscribers on every node. Options.Broker nil (the default) keeps every
// message in the process, as mizu does. Adapters for NATS and Redis pub/sub live in their
// own modules (broker/nats, broker/redis); MemoryBroker joins Servers of one process.
//
// A Server uses its Broker like this:
//   - Start once, from New, before any other call;
//   - Publish(topic, data) after delivering to its own subscribers, for every Publish
//     with valid JSON data. The broker must not deliver the message back to this node,
//     must keep the order of one node's Publish calls per topic, and must not block for
//     long (a broker that is unreachable queues a bounded amount or fails fast);
//   - Subscribe(topic) when the first local session subscribes to topic and
//     Unsubscribe(topic) after the last one left, from one goroutine, so a node receives
//     only the topics it has subscribers for. A broker keeps its subscriptions across
//     reconnects;
//   - Close when the Server shuts down; no Deliver may follow its return.
//
// A Broker calls back through the BrokerNode it was started with. Its methods may be
// called concurrently.
type Broker interface {
	Start(node BrokerNode) error
	Publish(topic string, data []byte) error
	Subscribe(topic string) error
	Unsubscribe(topic string) error
	Close() error
}

// BrokerNode is the Server as its Broker sees it.
type BrokerNode interface {
	// Deliver hands a message published on another node to this node's subscribers of
	// topic. It does not keep data. Calls for one topic must not overlap, so that order
	// holds; calls for different topics may.
	Deliver(topic string, data []byte)
	// Connected reports that the broker connection is up: at start and after every
	// reconnect, once subscriptions are restored.
	Connected()
	// Disconnected reports that the broker connection was lost (err says why). Local
	// Publish goes on; messages to and from other nodes are lost until Connected.
	Disconnected(err error)
}

// BrokerStats reports a Server's use of its Broker (all zero without one).
type BrokerStats struct {
	Connected     bool   // the broker connection is up
	Disconnects   uint64 // times the broker connection was lost
	Published     uint64 // messages the broker accepted from Publish
	PublishErrors uint64 // messages the broker refused at once (not sent to other nodes)
	Received      uint64 // messages from other nodes delivered here
	Interest      int    // topics this node asked the broker for (and it accepted)
	InterestError uint64 // Subscribe/Unsubscribe calls that failed (they are retried)
	// Messages a broker accepted but lost later (a queue dropped while the broker was
	// away) are not counted here; adapters report them in their own Stats.
}

// brokerLink is a Server's side of its Broker: the node callbacks, the counters, and the
// goroutine that keeps the broker's interest in line with the local topics.
type brokerLink struct {
	srv *Server
	b   Broker
	log *slog.Logger

	connected     atomic.Bool
	disconnects   atomic.Uint64
	published     atomic.Uint64
	publishErrors atomic.Uint64
	received      atomic.Uint64
	interestErrs  atomic.Uint64
	interestN     atomic.Int64

	mu    sync.Mutex
	dirty map[string]struct{} // topics whose interest may have to change
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// A failed Subscribe or Unsubscribe is tried again after interestRetry, doubling while it
// keeps failing, up to interestRetryMax.
const (
	interestRetry    = time.Second
	interestRetryMax = 30 * time.Second
)

func newBrokerLink(srv *Server, b Broker, log *slog.Logger) *brokerLink {
	l := &brokerLink{
		srv:   srv,
		b:     b,
		log:   log,
		dirty: make(map[string]struct{}),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if err := b.Start((*brokerNode)(l)); err != nil {
		l.log.Error("live: broker start failed; serving local subscribers only until it connects", "err", err)
	}
	go l.run()
	return l
}

// brokerNode is the BrokerNode face of a brokerLink (its methods are not the Server's).
type brokerNode brokerLink

func (n *brokerNode) Deliver(topic string, data []byte) {
	n.received.Add(1)
	n.srv.publishLocal(topic, data)
}

func (n *brokerNode) Connected() {
	if !n.connected.Swap(true) {
		n.log.Info("live: broker connected")
	}
}

func (n *brokerNode) Disconnected(err error) {
	if n.connected.Swap(false) {
		n.disconnects.Add(1)
		n.log.Warn("live: broker disconnected; serving local subscribers only", "err", err)
	}
}

// publish passes a local Publish on to the other nodes; Publish has checked that data is
// valid JSON.
func (l *brokerLink) publish(topic string, data []byte) {
	if err := l.b.Publish(topic, data); err != nil {
		if l.publishErrors.Add(1) == 1 || l.connected.Load() {
			l.log.Warn("live: broker publish failed", "topic", topic, "err", err)
		}
		return
	}
	l.published.Add(1)
}

// touch notes that topic gained its first or lost its last local subscriber.
func (l *brokerLink) touch(topic string) {
	l.mu.Lock()
	l.dirty[topic] = struct{}{}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run applies interest changes one at a time: for each touched topic it compares whether
// the node has local subscribers with what the broker was told, so a subscribe and an
// unsubscribe racing on the other goroutines can never leave the broker in the wrong
// state. Failed calls are retried.
func (l *brokerLink) run() {
	defer close(l.done)
	held := make(map[string]bool)
	retry := time.NewTimer(interestRetry)
	retry.Stop()
	backoff := interestRetry
	failing := false // the last round had failures: log again only once it succeeded
	for {
		select {
		case <-l.stop:
			retry.Stop()
			return
		case <-l.wake:
		case <-retry.C:
		}
		l.mu.Lock()
		todo := l.dirty
		l.dirty = make(map[string]struct{})
		l.mu.Unlock()
		failed := false
		for topic := range todo {
			want := l.srv.topics.has(topic)
			if want == held[topic] {
				continue
			}
			var err error
			if want {
				err = l.b.Subscribe(topic)
			} else {
				err = l.b.Unsubscribe(topic)
			}
			if err != nil {
				l.interestErrs.Add(1)
				if !failing && l.connected.Load() {
					l.log.Warn("live: broker interest change failed; will retry", "topic", topic, "subscribe", want, "err", err)
				}
				l.mu.Lock()
				l.dirty[topic] = struct{}{}
				l.mu.Unlock()
				failed = true
				continue
			}
			if want {
				held[topic] = true
			} else {
				delete(held, topic)
			}
		}
		l.interestN.Store(int64(len(held)))
		failing = failed
		if failed {
			retry.Reset(backoff)
			backoff = min(2*backoff, interestRetryMax)
		} else {
			backoff = interestRetry
		}
	}
}

// close stops the interest goroutine and closes the broker.
func (l *brokerLink) close() {
	close(l.stop)
	<-l.done
	if err := l.b.Close(); err != nil {
		l.log.Warn("live: broker close", "err", err)
	}
}

func (l *brokerLink) stats() BrokerStats {
	if l == nil {
		return BrokerStats{}
	}
	return BrokerStats{
		Connected:     l.connected.Load(),
		Disconnects:   l.disconnects.Load(),
		Published:     l.published.Load(),
		PublishErrors: l.publishErrors.Load(),
		Received:      l.received.Load(),
		Interest:      int(l.interestN.Load()),
		InterestError: l.interestErrs.Load(),
	}
}
