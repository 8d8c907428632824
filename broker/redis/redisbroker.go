// Package redisbroker joins livepoll Servers on several machines through Redis pub/sub: it
// is a live.Broker on a *redis.Client that the program opens and owns.
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	srv := live.New(live.Options{Broker: redisbroker.New(client, redisbroker.Options{})})
//	...
//	srv.Close() // closes the broker: its subscriptions end, client stays open
//	client.Close()
//
// Topic T travels on channel Prefix + T (Redis channel names are binary safe; SUBSCRIBE,
// not PSUBSCRIBE, so glob characters mean nothing). Each node holds one subscription
// connection (a go-redis PubSub) with one channel per topic it has local subscribers for.
// Redis sends a publish back to the publisher's own subscriptions, so every payload starts
// with '#' and the node's 16-character random ID, and a node drops messages with its own
// ID; a payload without that tag (a JSON value published by another program) is
// delivered as it is.
//
// Publish puts the message on a bounded queue (Options.QueueSize) that one goroutine
// sends to Redis in pipelines, in order; it never waits for Redis. It fails at once with
// ErrNotConnected while the subscription connection is down and with ErrQueueFull when
// the queue is full. A queued message that Redis then does not take is lost, counted in
// Stats.Lost and logged; pipelines are not retried, so a message is never sent twice.
//
// The subscription connection is watched: after Options.HealthCheck without traffic the
// broker pings, and without an answer within the same time it drops the connection. A
// lost connection is reported to the Server (Stats().Broker, its log) and re-dialled
// after a pause that grows from 50 ms to 1 s. go-redis subscribes the new connection to
// the channels it had; the broker adds the interest changes made while it was down
// (Subscribe and Unsubscribe then only record them) and reports the connection up when
// Redis has answered a ping sent after all that.
//
// docs/scaling.md in the livepoll repository describes the delivery guarantees.
package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livepoll/livepoll/internal/brokerkit"
	"github.com/livepoll/livepoll/live"
)

// Options configures a Broker. The zero value is usable.
type Options struct {
	// Prefix starts every channel name: topic T travels on Prefix + T (default
	// "livepoll:").
	Prefix string

	// QueueSize is how many published messages may wait for the publishing goroutine
	// (default 4096); past it Publish fails with ErrQueueFull.
	QueueSize int

	// MaxPending bounds the messages from other nodes that wait for delivery to this
	// node's subscribers (default 65536, and 64 MiB of data); past it they are dropped and
	// counted in Stats.Dropped.
	MaxPending int

	// HealthCheck is how long the subscription connection may be silent before the broker
	// pings Redis, and how long it then waits for an answer before it drops the connection
	// and dials again (default 3 s). It also bounds connecting and each Subscribe.
	HealthCheck time.Duration

	// Logger receives what only the broker sees: published messages lost after Publish
	// had accepted them, and commands Redis refused on the subscription connection (a
	// SUBSCRIBE that ACLs forbid). Connection state goes to the Server's log. Default:
	// slog.Default().
	Logger *slog.Logger
}

const (
	defaultPrefix      = "livepoll:"
	defaultQueueSize   = 4096
	defaultHealthCheck = 3 * time.Second
	// maxBatch is the most messages one pipeline carries.
	maxBatch = 256
	// minBackoff and maxBackoff bound the pause between attempts to reconnect.
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
	// closeDrain is how long Close lets the publishing goroutine send what is queued.
	closeDrain = 2 * time.Second
	// tagLen is the length of the payload tag: '#' and the node ID.
	tagLen = 1 + 16
)

var (
	// ErrNotConnected is returned by Publish while the broker's subscription connection
	// to Redis is down (the Server counts these in Stats().Broker.PublishErrors).
	ErrNotConnected = errors.New("redisbroker: not connected to Redis")
	// ErrQueueFull is returned by Publish when Options.QueueSize messages are waiting.
	ErrQueueFull = errors.New("redisbroker: publish queue full")

	errStarted = errors.New("redisbroker: Start called twice")
	errClosed  = errors.New("redisbroker: broker closed")
)

// Broker is a live.Broker on a Redis client. Give each Server its own Broker.
type Broker struct {
	client *redis.Client
	opts   Options
	id     string
	log    *slog.Logger

	node live.BrokerNode
	disp *brokerkit.Dispatcher
	ps   *redis.PubSub

	// mu orders interest changes against (re)connecting: while connect holds it, the
	// connection goes up with exactly the channels in want.
	mu      sync.Mutex
	started atomic.Bool
	want    map[string]struct{} // channels the node wants
	given   map[string]struct{} // channels handed to the PubSub (it resubscribes them)
	closed  atomic.Bool
	up      atomic.Bool // the subscription connection is up, as reported to the node

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	queue     chan outgoing
	stopPub   chan struct{}
	pubCtx    context.Context // the publishing goroutine's; cancelled when Close stops waiting
	pubCancel context.CancelFunc
	pubDone   chan struct{}
	recvDone  chan struct{}

	// The receiving goroutine's: when it last heard from Redis, and the health pinger.
	lastHeard time.Time
	pinger    *time.Timer
	pingMu    sync.Mutex
	pinging   sync.WaitGroup

	sent      atomic.Uint64
	lost      atomic.Uint64
	lossSaid  atomic.Bool // a loss was logged since the last successful pipeline
	echoes    atomic.Uint64
	malformed atomic.Uint64
}

type outgoing struct {
	channel string
	payload []byte
}

// New returns a Broker on client, for live.Options.Broker. client stays the caller's: the
// Broker never closes it. The broker uses one connection of its own for subscriptions
// (client.Subscribe) and the client's pool for publishing.
func New(client *redis.Client, opts Options) *Broker {
	if opts.Prefix == "" {
		opts.Prefix = defaultPrefix
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = defaultQueueSize
	}
	if opts.HealthCheck <= 0 {
		opts.HealthCheck = defaultHealthCheck
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Broker{
		client: client,
		opts:   opts,
		id:     brokerkit.NodeID(),
		log:    log,
		want:   make(map[string]struct{}),
		given:  make(map[string]struct{}),
	}
}

// ID is the random ID of this node that tags its payloads.
func (b *Broker) ID() string { return b.id }

// Channel returns the Redis channel of topic.
func (b *Broker) Channel(topic string) string { return b.opts.Prefix + topic }

// Start implements live.Broker. It connects once, waiting up to Options.HealthCheck; if
// that fails it returns the error and keeps trying in the background.
func (b *Broker) Start(node live.BrokerNode) error {
	b.mu.Lock()
	if b.started.Load() {
		b.mu.Unlock()
		return errStarted
	}
	if b.client == nil {
		b.mu.Unlock()
		return errors.New("redisbroker: nil *redis.Client")
	}
	b.started.Store(true)
	b.node = node
	b.disp = brokerkit.NewDispatcher(brokerkit.Limits{MaxMessages: b.opts.MaxPending}, node.Deliver)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.pubCtx, b.pubCancel = context.WithCancel(context.Background())
	b.queue = make(chan outgoing, b.opts.QueueSize)
	b.stopPub = make(chan struct{})
	b.pubDone = make(chan struct{})
	b.recvDone = make(chan struct{})
	b.ps = b.client.Subscribe(b.ctx) // no channels: it dials on first use
	b.pinger = time.AfterFunc(time.Hour, b.healthPing)
	b.pinger.Stop()
	b.mu.Unlock()
	go b.publishLoop()
	err := b.connect()
	if err != nil {
		err = fmt.Errorf("redisbroker: connecting to Redis: %w", err)
		node.Disconnected(err)
	}
	go b.receive()
	return err
}

// connect brings the subscription connection up with the channels the node wants. go-redis
// dials if it has no connection and subscribes it to the channels it was given; connect
// adds the channels wanted since and removes those no longer wanted (interest changes made
// while the connection was down), then pings and waits for the answer. Redis answers in
// order, so once the pong is in, the subscriptions are in place.
func (b *Broker) connect() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.HealthCheck)
	defer cancel()
	var add, drop []string
	for ch := range b.want {
		if _, ok := b.given[ch]; !ok {
			add = append(add, ch)
		}
	}
	for ch := range b.given {
		if _, ok := b.want[ch]; !ok {
			drop = append(drop, ch)
		}
	}
	if len(add) > 0 {
		if err := b.give(ctx, true, add...); err != nil {
			return err
		}
	}
	if len(drop) > 0 {
		if err := b.give(ctx, false, drop...); err != nil {
			return err
		}
	}
	if err := b.ps.Ping(ctx); err != nil {
		return err
	}
	for {
		msg, err := b.ps.Receive(ctx)
		if b.refused(err) {
			continue
		}
		if err != nil {
			return err
		}
		b.lastHeard = time.Now()
		if _, ok := msg.(*redis.Pong); ok {
			b.markUp()
			return nil
		}
		b.handle(msg)
	}
}

// receive reads the subscription connection until Close, and reconnects when it is lost.
func (b *Broker) receive() {
	defer close(b.recvDone)
	backoff := minBackoff
	for !b.closed.Load() {
		if !b.up.Load() {
			if !b.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			if err := b.connect(); err != nil {
				b.markDown(fmt.Errorf("redisbroker: reconnecting to Redis: %w", err))
				continue
			}
			backoff = minBackoff
			continue
		}
		// The read deadline is the latest moment something must have arrived: the health
		// ping goes out HealthCheck after the last traffic, and its answer gets as long
		// again. A read that times out without a timeout argument is fatal to go-redis,
		// which closes the connection: the next connect dials a new one.
		ctx, cancel := context.WithDeadline(b.ctx, b.lastHeard.Add(2*b.opts.HealthCheck))
		msg, err := b.ps.Receive(ctx)
		cancel()
		if b.refused(err) {
			continue
		}
		if err != nil {
			if b.closed.Load() {
				return
			}
			b.markDown(fmt.Errorf("redisbroker: subscription connection lost: %w", err))
			backoff = minBackoff
			continue
		}
		b.lastHeard = time.Now()
		b.pinger.Reset(b.opts.HealthCheck)
		b.handle(msg)
	}
}

// refused reports (and logs) an error answer from Redis on the subscription connection, a
// SUBSCRIBE that ACLs forbid, say: Redis answered, so the connection is fine.
func (b *Broker) refused(err error) bool {
	var answer redis.Error
	if !errors.As(err, &answer) {
		return false
	}
	b.lastHeard = time.Now()
	b.log.Warn("redisbroker: Redis refused a command on the subscription connection", "err", err)
	return true
}

// sleep pauses for about d (±20%), or returns false at once if the broker closes.
func (b *Broker) sleep(d time.Duration) bool {
	d = d*4/5 + rand.N(d*2/5+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

func (b *Broker) markUp() {
	b.up.Store(true)
	b.pinger.Reset(b.opts.HealthCheck)
	if !b.closed.Load() {
		b.node.Connected()
	}
}

func (b *Broker) markDown(err error) {
	b.up.Store(false)
	b.pinger.Stop()
	if !b.closed.Load() {
		b.node.Disconnected(err)
	}
}

// healthPing runs on its own goroutine when the subscription connection has been silent
// for HealthCheck; the answer (or its absence) is seen by receive.
func (b *Broker) healthPing() {
	b.pingMu.Lock()
	if b.closed.Load() || !b.up.Load() {
		b.pingMu.Unlock()
		return
	}
	b.pinging.Add(1)
	b.pingMu.Unlock()
	defer b.pinging.Done()
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.HealthCheck)
	defer cancel()
	_ = b.ps.Ping(ctx)
}

// handle passes a message from another node to the Dispatcher.
func (b *Broker) handle(msg any) {
	m, ok := msg.(*redis.Message)
	if !ok {
		return // subscription confirmations, pongs
	}
	topic, ok := strings.CutPrefix(m.Channel, b.opts.Prefix)
	if !ok {
		return
	}
	p := m.Payload
	if len(p) > 0 && p[0] == '#' {
		if len(p) < tagLen {
			b.malformed.Add(1)
			return
		}
		if p[1:tagLen] == b.id {
			b.echoes.Add(1)
			return
		}
		p = p[tagLen:]
	}
	b.disp.Push(topic, []byte(p))
}

// Publish implements live.Broker: it queues data for the publishing goroutine.
func (b *Broker) Publish(topic string, data []byte) error {
	if b.closed.Load() || !b.started.Load() {
		return errClosed
	}
	if !b.up.Load() {
		return ErrNotConnected
	}
	payload := make([]byte, tagLen+len(data))
	payload[0] = '#'
	copy(payload[1:], b.id)
	copy(payload[tagLen:], data)
	select {
	case b.queue <- outgoing{channel: b.Channel(topic), payload: payload}:
		return nil
	default:
		return ErrQueueFull
	}
}

// publishLoop sends the queue to Redis, one pipeline at a time so that order holds.
func (b *Broker) publishLoop() {
	defer close(b.pubDone)
	batch := make([]outgoing, 0, maxBatch)
	for {
		select {
		case m := <-b.queue:
			batch = b.fill(append(batch[:0], m))
			b.send(batch)
			clear(batch)
		case <-b.stopPub:
			// Close: send what is queued, until Close stops waiting.
			for {
				batch = b.fill(batch[:0])
				if len(batch) == 0 || b.pubCtx.Err() != nil {
					return
				}
				b.send(batch)
				clear(batch)
			}
		}
	}
}

// fill adds queued messages to batch, up to maxBatch, without waiting.
func (b *Broker) fill(batch []outgoing) []outgoing {
	for len(batch) < maxBatch {
		select {
		case m := <-b.queue:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// send publishes batch in one pipeline. Commands are marked not to be retried: a retry
// after Redis took part of a pipeline would deliver those messages twice.
func (b *Broker) send(batch []outgoing) {
	if !b.up.Load() {
		b.lose(len(batch), ErrNotConnected)
		return
	}
	ctx := b.pubCtx
	pipe := b.client.Pipeline()
	for _, m := range batch {
		_ = pipe.Process(ctx, noRetry{redis.NewIntCmd(ctx, "publish", m.channel, m.payload)})
	}
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		b.sent.Add(uint64(len(batch)))
		b.lossSaid.Store(false)
		return
	}
	failed := 0
	for _, c := range cmds {
		if c.Err() != nil {
			failed++
		}
	}
	if len(cmds) == 0 {
		failed = len(batch)
	}
	b.sent.Add(uint64(len(batch) - failed))
	b.lose(failed, err)
}

func (b *Broker) lose(n int, err error) {
	b.lost.Add(uint64(n))
	if !b.lossSaid.Swap(true) {
		b.log.Warn("redisbroker: published messages lost; further losses are counted in Stats.Lost until a publish succeeds", "messages", n, "err", err)
	}
}

// noRetry is a PUBLISH that go-redis must not send again after a failure.
type noRetry struct{ *redis.IntCmd }

func (noRetry) NoRetry() bool { return true }

// Subscribe implements live.Broker.
func (b *Broker) Subscribe(topic string) error {
	return b.interest(topic, true)
}

// Unsubscribe implements live.Broker.
func (b *Broker) Unsubscribe(topic string) error {
	return b.interest(topic, false)
}

func (b *Broker) interest(topic string, subscribe bool) error {
	ch := b.Channel(topic)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() || !b.started.Load() {
		return errClosed
	}
	if subscribe {
		b.want[ch] = struct{}{}
	} else {
		delete(b.want, ch)
	}
	if !b.up.Load() {
		return nil // connect applies it before the connection counts as up
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.HealthCheck)
	defer cancel()
	return b.give(ctx, subscribe, ch)
}

// give subscribes the PubSub to channels or unsubscribes it. go-redis records the change
// even when sending it fails, and applies it when it dials again; given mirrors that.
func (b *Broker) give(ctx context.Context, subscribe bool, channels ...string) error {
	if subscribe {
		for _, ch := range channels {
			b.given[ch] = struct{}{}
		}
		return b.ps.Subscribe(ctx, channels...)
	}
	for _, ch := range channels {
		delete(b.given, ch)
	}
	return b.ps.Unsubscribe(ctx, channels...)
}

// Close implements live.Broker: it lets the publishing goroutine send what is queued (for
// up to two seconds while connected), closes the subscription connection and waits for the
// broker's goroutines and deliveries in progress. The client stays open.
func (b *Broker) Close() error {
	if !b.started.Load() || b.closed.Swap(true) {
		return nil
	}

	close(b.stopPub)
	giveUp := time.AfterFunc(closeDrain, b.pubCancel)
	<-b.pubDone
	giveUp.Stop()
	b.pubCancel()

	b.cancel()
	err := b.ps.Close()
	<-b.recvDone
	b.pinger.Stop()
	b.pingMu.Lock() // no health ping starts after this
	b.pingMu.Unlock()
	b.pinging.Wait()
	b.disp.Close()
	return err
}

// Stats are a Broker's own counters; live.Server.Stats().Broker has the rest.
type Stats struct {
	Queued    int    // published messages waiting for the publishing goroutine
	Sent      uint64 // published messages Redis took
	Lost      uint64 // published messages accepted by Publish that Redis did not take
	Echoes    uint64 // own messages Redis sent back, dropped
	Malformed uint64 // tagged payloads too short to carry a node ID, dropped
	Dropped   uint64 // messages from other nodes dropped because MaxPending was reached
	Waiting   int    // messages from other nodes waiting for local delivery
}

// Stats returns the Broker's counters.
func (b *Broker) Stats() Stats {
	st := Stats{
		Sent:      b.sent.Load(),
		Lost:      b.lost.Load(),
		Echoes:    b.echoes.Load(),
		Malformed: b.malformed.Load(),
	}
	if b.disp != nil {
		st.Queued = len(b.queue)
		st.Dropped = b.disp.Dropped()
		st.Waiting = b.disp.Waiting()
	}
	return st
}

var _ live.Broker = (*Broker)(nil)
