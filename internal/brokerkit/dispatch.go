// Package brokerkit holds what the broker adapters (broker/nats, broker/redis: modules of
// their own) share: a Dispatcher that hands messages from one broker connection to the node
// in order per topic, and node IDs for dropping a node's own messages.
package brokerkit

import (
	"crypto/rand"
	"encoding/hex"
	"runtime"
	"sync"
	"sync/atomic"
)

// Limits bound a Dispatcher. Zero fields take the defaults.
type Limits struct {
	// Workers is how many topics may be delivered at the same time (default GOMAXPROCS).
	// Workers are goroutines that exist only while there are messages to deliver.
	Workers int
	// MaxMessages and MaxBytes bound the messages waiting for delivery, over all topics
	// (defaults DefaultMaxMessages and DefaultMaxBytes). A message past either is dropped.
	MaxMessages int
	MaxBytes    int
}

// Default limits of a Dispatcher.
const (
	DefaultMaxMessages = 1 << 16
	DefaultMaxBytes    = 64 << 20
)

// batch is how many messages of one topic a worker takes in one turn before it lets other
// topics go first.
const batch = 64

// Dispatcher calls deliver for the messages given to Push: in Push order per topic, never
// twice at the same time for one topic, different topics in parallel on up to
// Limits.Workers goroutines. Push never blocks on deliver, so the goroutine that reads
// the broker connection keeps reading (and answering pings) while a large topic is being
// written to its subscribers.
type Dispatcher struct {
	deliver func(topic string, data []byte)
	lim     Limits

	mu      sync.Mutex
	lanes   map[string]*lane // topics with messages waiting or being delivered
	ready   []*lane          // lanes waiting for a worker, oldest first
	workers int              // worker goroutines alive
	msgs    int              // messages waiting, over all lanes
	bytes   int
	closed  atomic.Bool
	wg      sync.WaitGroup

	delivered atomic.Uint64
	dropped   atomic.Uint64
}

// lane is one topic's waiting messages. A lane is in Dispatcher.lanes while it has messages
// or a worker is delivering from it, and in ready at most once, only when no worker has it.
type lane struct {
	topic string
	msgs  [][]byte
}

// NewDispatcher returns a Dispatcher that calls deliver.
func NewDispatcher(lim Limits, deliver func(topic string, data []byte)) *Dispatcher {
	if lim.Workers <= 0 {
		lim.Workers = runtime.GOMAXPROCS(0)
	}
	if lim.MaxMessages <= 0 {
		lim.MaxMessages = DefaultMaxMessages
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	return &Dispatcher{deliver: deliver, lim: lim, lanes: make(map[string]*lane)}
}

// Push queues data for topic; the Dispatcher keeps data until it is delivered. It returns
// false, and counts the message as dropped, when the limits are reached or the Dispatcher
// is closed.
func (d *Dispatcher) Push(topic string, data []byte) bool {
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return false
	}
	if d.msgs >= d.lim.MaxMessages || d.bytes+len(data) > d.lim.MaxBytes {
		d.mu.Unlock()
		d.dropped.Add(1)
		return false
	}
	d.msgs++
	d.bytes += len(data)
	l := d.lanes[topic]
	if l == nil {
		l = &lane{topic: topic}
		d.lanes[topic] = l
		d.ready = append(d.ready, l)
	}
	l.msgs = append(l.msgs, data)
	if d.workers < d.lim.Workers && len(d.ready) > 0 {
		d.workers++
		d.wg.Add(1)
		go d.work()
	}
	d.mu.Unlock()
	return true
}

// work delivers ready lanes until there are none.
func (d *Dispatcher) work() {
	defer d.wg.Done()
	d.mu.Lock()
	for len(d.ready) > 0 && !d.closed.Load() {
		l := d.ready[0]
		d.ready[0] = nil
		d.ready = d.ready[1:]
		take := l.msgs
		if len(take) > batch {
			take = take[:batch:batch]
		}
		d.mu.Unlock()
		for _, data := range take {
			if d.closed.Load() {
				break
			}
			d.deliver(l.topic, data)
			d.delivered.Add(1)
		}
		d.mu.Lock()
		if d.closed.Load() {
			break // Close has dropped the rest
		}
		d.msgs -= len(take)
		for _, data := range take {
			d.bytes -= len(data)
		}
		clear(l.msgs[:len(take)])
		l.msgs = l.msgs[len(take):]
		if len(l.msgs) > 0 {
			d.ready = append(d.ready, l)
		} else {
			delete(d.lanes, l.topic)
		}
	}
	d.workers--
	d.mu.Unlock()
}

// Close drops the messages still waiting and returns once no deliver call is running;
// none starts after it. Push after Close drops.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	d.closed.Store(true)
	d.lanes = make(map[string]*lane)
	d.ready = nil
	d.msgs, d.bytes = 0, 0
	d.mu.Unlock()
	d.wg.Wait()
}

// Delivered is how many messages deliver was called for.
func (d *Dispatcher) Delivered() uint64 { return d.delivered.Load() }

// Dropped is how many messages Push dropped because the limits were reached.
func (d *Dispatcher) Dropped() uint64 { return d.dropped.Load() }

// Waiting is how many messages are queued for delivery.
func (d *Dispatcher) Waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.msgs
}

// NodeID returns 16 random lowercase hex characters naming one node of a cluster, for
// recognising the node's own messages when the broker echoes them.
func NodeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
