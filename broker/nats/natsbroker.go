// Package natsbroker joins livepoll Servers on several machines through NATS: it is a
// live.Broker on a *nats.Conn that the program opens and owns.
//
//	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
//	...
//	srv := live.New(live.Options{Broker: natsbroker.New(nc, natsbroker.Options{})})
//	...
//	srv.Close() // closes the broker: its subscriptions end, nc stays open
//	nc.Close()
//
// Each topic a node has local subscribers for is one NATS subscription on subject
// Prefix + "." + the topic escaped into one subject token (Broker.Subject). A message
// carries its node's random ID in the header Livepoll-Node, and a node drops messages
// with its own ID, so the NATS server may echo publishes back (the default) or not
// (nats.NoEcho(), which saves the round trip). Messages published to the subjects by
// other programs, without that header, are delivered like any other. The header needs
// NATS server 2.2 or later.
//
// The connection's state reaches the Server (Stats().Broker, its log) through a status
// listener (nats.Conn.StatusChanged), so the program's own handlers are left alone and may
// be set or changed at any time. nats.go restores the subscriptions after a reconnect; the
// broker reports the connection up once the server has answered a flush sent after them.
// How fast a dead server is noticed, how often nats.go tries to reconnect and for how
// long are the connection's options (nats.PingInterval, nats.MaxPingsOutstanding,
// nats.ReconnectWait, nats.MaxReconnects): the program's choice. A connection that has
// given up (closed) stays down; the node then serves its local subscribers only.
//
// Publish hands the message to nc. While nats.go reconnects it goes to the reconnect
// buffer (nats.ReconnectBufSize, 8 MiB by default), which is sent after the reconnect, so
// other nodes whose subscriptions are back by then get those messages late;
// nats.ReconnectBufSize(-1) makes Publish fail at once instead. Publish fails at once when
// that buffer is full or the connection is closed. While connected, nc writes to the
// socket itself when its buffer is full, and may wait up to nats.FlusherTimeout (one
// minute by default) for a server that stopped reading: lower it if Publish must not wait
// that long.
//
// Messages from other nodes go from all subscriptions into one channel, which one
// goroutine reads, to a dispatcher that delivers them in order per topic, never two of
// one topic at the same time, and different topics in parallel on up to GOMAXPROCS
// goroutines that exist only while there is work (so a topic costs no goroutine).
//
// docs/scaling.md in the livepoll repository describes the delivery guarantees.
package natsbroker

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"

	"github.com/livepoll/livepoll/internal/brokerkit"
	"github.com/livepoll/livepoll/live"
)

// Options configures a Broker. The zero value is usable.
type Options struct {
	// Prefix is the subject prefix: topic T travels on subject Prefix + "." + token(T)
	// (default "livepoll"). It may hold several tokens ("app.live") and no wildcards.
	Prefix string

	// MaxPending bounds the messages from other nodes that wait for delivery to this
	// node's subscribers (default 65536, and 64 MiB of data); past it they are dropped and
	// counted in Stats.Dropped.
	MaxPending int
}

// NodeHeader is the message header that carries the publishing node's ID.
const NodeHeader = "Livepoll-Node"

const (
	defaultPrefix = "livepoll"
	// maxToken is the longest escaped topic used as it is; longer topics travel on a
	// hash of the topic, so that no topic can make a subject the server refuses.
	maxToken = 512
	// inbound is the buffer of the channel all subscriptions deliver into. nats.go drops
	// messages when it is full (a slow consumer, reported to the conn's error handler);
	// the one goroutine reading it only hands messages to the Dispatcher.
	inbound = 1 << 14
)

var (
	errStarted    = errors.New("natsbroker: Start called twice")
	errClosed     = errors.New("natsbroker: broker closed")
	errEmptyTopic = errors.New("natsbroker: empty topic")
)

// Broker is a live.Broker on a NATS connection. Give each Server its own Broker.
type Broker struct {
	nc     *nats.Conn
	opts   Options
	id     string
	header nats.Header // read only: shared by every published message

	node live.BrokerNode
	disp *brokerkit.Dispatcher

	mu      sync.Mutex
	subs    map[string]*nats.Subscription // by topic
	started bool
	closed  atomic.Bool
	routes  sync.Map // subject → topic, for the subscriptions in subs

	stateMu sync.Mutex // serialises reports of the connection state
	in      chan *nats.Msg
	status  chan nats.Status
	stop    chan struct{}
	wg      sync.WaitGroup

	echoes atomic.Uint64
}

// New returns a Broker on nc, for live.Options.Broker. nc stays the caller's: the Broker
// never closes it or changes its options or handlers.
func New(nc *nats.Conn, opts Options) *Broker {
	if opts.Prefix == "" {
		opts.Prefix = defaultPrefix
	}
	id := brokerkit.NodeID()
	return &Broker{
		nc:     nc,
		opts:   opts,
		id:     id,
		header: nats.Header{NodeHeader: []string{id}},
		subs:   make(map[string]*nats.Subscription),
	}
}

// ID is the random ID of this node in NodeHeader.
func (b *Broker) ID() string { return b.id }

// Start implements live.Broker. It fails if nc is not connected yet (the Broker then
// reports the connection up when nc connects) or closed, or the prefix is not valid.
func (b *Broker) Start(node live.BrokerNode) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return errStarted
	}
	if b.nc == nil {
		return errors.New("natsbroker: nil *nats.Conn")
	}
	if err := validPrefix(b.opts.Prefix); err != nil {
		return err
	}
	b.started = true
	b.node = node
	b.disp = brokerkit.NewDispatcher(brokerkit.Limits{MaxMessages: b.opts.MaxPending}, node.Deliver)
	b.in = make(chan *nats.Msg, inbound)
	b.stop = make(chan struct{})
	b.status = b.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	b.wg.Add(2)
	go b.watch()
	go b.read()

	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	switch st := b.nc.Status(); {
	case st == nats.CONNECTED:
		node.Connected()
		return nil
	case st == nats.CLOSED:
		err := fmt.Errorf("natsbroker: %w", nats.ErrConnectionClosed)
		node.Disconnected(err)
		return err
	default:
		err := fmt.Errorf("natsbroker: NATS connection not established (%s)", st)
		node.Disconnected(err)
		return err
	}
}

// watch turns the connection's status changes into Connected and Disconnected reports.
func (b *Broker) watch() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case st, ok := <-b.status:
			if !ok {
				return
			}
			b.onStatus(st)
		}
	}
}

// onStatus reports every loss, even one nats.go has already recovered from, and then the
// state the connection is in now. The connection counts as up once the server has answered
// a flush sent after nats.go restored the subscriptions: then they are in place.
func (b *Broker) onStatus(st nats.Status) {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	if b.closed.Load() {
		return
	}
	if st != nats.CONNECTED {
		b.node.Disconnected(b.lossError(st))
	}
	timeout := b.nc.Opts.Timeout
	if timeout <= 0 {
		timeout = nats.DefaultTimeout
	}
	// While nc says it is connected, flush until the server answers. When nc is not
	// connected a later status change brings it back here.
	for b.nc.IsConnected() && !b.closed.Load() {
		err := b.nc.FlushTimeout(timeout)
		if err == nil {
			b.node.Connected()
			return
		}
		if !b.nc.IsConnected() {
			return
		}
		b.node.Disconnected(fmt.Errorf("natsbroker: connected, but no answer to a flush within %v: %w", timeout, err))
		select {
		case <-b.stop:
			return
		case <-time.After(timeout):
		}
	}
}

func (b *Broker) lossError(st nats.Status) error {
	switch st {
	case nats.CLOSED:
		return fmt.Errorf("natsbroker: %w (nats.go gave up or the program closed it)", nats.ErrConnectionClosed)
	case nats.RECONNECTING:
		if err := b.nc.LastError(); err != nil {
			return fmt.Errorf("natsbroker: connection to NATS lost, reconnecting: %w", err)
		}
		return errors.New("natsbroker: connection to NATS lost, reconnecting")
	default:
		return fmt.Errorf("natsbroker: connection to NATS lost (%s)", st)
	}
}

// read hands the messages of every subscription to the Dispatcher, dropping this node's own.
func (b *Broker) read() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case m := <-b.in:
			if m.Header != nil && m.Header.Get(NodeHeader) == b.id {
				b.echoes.Add(1)
				continue
			}
			if topic, ok := b.routes.Load(m.Subject); ok { // else it came after Unsubscribe
				b.disp.Push(topic.(string), m.Data)
			}
		}
	}
}

// Publish implements live.Broker: it sends data on the topic's subject through nc, which
// buffers it (also while reconnecting, up to its reconnect buffer).
func (b *Broker) Publish(topic string, data []byte) error {
	if topic == "" {
		return errEmptyTopic
	}
	if b.closed.Load() {
		return errClosed
	}
	return b.nc.PublishMsg(&nats.Msg{Subject: b.Subject(topic), Header: b.header, Data: data})
}

// Subscribe implements live.Broker. While nats.go reconnects it succeeds and the
// subscription reaches the server with the reconnect.
func (b *Broker) Subscribe(topic string) error {
	if topic == "" {
		return errEmptyTopic
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() || !b.started {
		return errClosed
	}
	if _, ok := b.subs[topic]; ok {
		return nil
	}
	subject := b.Subject(topic)
	s, err := b.nc.ChanSubscribe(subject, b.in)
	if err != nil {
		return fmt.Errorf("natsbroker: subscribe %s: %w", subject, err)
	}
	b.routes.Store(subject, topic)
	b.subs[topic] = s
	return nil
}

// Unsubscribe implements live.Broker.
func (b *Broker) Unsubscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.subs[topic]
	if !ok {
		return nil
	}
	if err := s.Unsubscribe(); err != nil && !gone(err) {
		return fmt.Errorf("natsbroker: unsubscribe %s: %w", s.Subject, err)
	}
	delete(b.subs, topic)
	b.routes.Delete(s.Subject)
	return nil
}

// gone reports errors that mean the subscription no longer exists anyway.
func gone(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription)
}

// Close implements live.Broker: it ends the subscriptions and the Broker's goroutines and
// waits for deliveries in progress. nc stays open.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed.Swap(true) || !b.started {
		b.mu.Unlock()
		return nil
	}
	subs := b.subs
	b.subs = make(map[string]*nats.Subscription)
	b.mu.Unlock()

	b.nc.RemoveStatusListener(b.status)
	close(b.stop)
	b.wg.Wait()
	var errs []error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !gone(err) {
			errs = append(errs, err)
		}
	}
	b.disp.Close()
	b.stateMu.Lock() // wait for a report in progress
	b.stateMu.Unlock()
	return errors.Join(errs...)
}

// Stats are a Broker's own counters; live.Server.Stats().Broker has the rest.
type Stats struct {
	Subscriptions int    // NATS subscriptions held, one per topic
	Echoes        uint64 // own messages the server sent back, dropped
	Dropped       uint64 // messages from other nodes dropped because MaxPending was reached
	SlowConsumer  uint64 // messages nats.go dropped because the inbound channel was full (current subscriptions)
	Waiting       int    // messages from other nodes waiting for local delivery
}

// Stats returns the Broker's counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	st := Stats{Subscriptions: len(b.subs), Echoes: b.echoes.Load()}
	for _, s := range b.subs {
		if n, err := s.Dropped(); err == nil {
			st.SlowConsumer += uint64(n)
		}
	}
	b.mu.Unlock()
	if b.disp != nil {
		st.Dropped = b.disp.Dropped()
		st.Waiting = b.disp.Waiting()
	}
	return st
}

// Subject returns the subject topic travels on: the prefix, a dot, and the topic as one
// token in which every byte other than ASCII letters, digits and -_~:/=@+,! is written as
// %XX (upper-case hex), so "chat room.1" becomes "livepoll.chat%20room%2E1" and Topic
// turns it back. A topic whose token would be longer than 512 bytes travels on "%H" and
// the hex SHA-256 of the topic instead; such subjects do not turn back.
func (b *Broker) Subject(topic string) string {
	return b.opts.Prefix + "." + Token(topic)
}

// Token escapes topic into one subject token, as Subject describes.
func Token(topic string) string {
	n := 0
	for i := 0; i < len(topic); i++ {
		if safe(topic[i]) {
			n++
		} else {
			n += 3
		}
	}
	if n > maxToken {
		sum := sha256.Sum256([]byte(topic))
		return "%H" + hex.EncodeToString(sum[:])
	}
	if n == len(topic) {
		return topic
	}
	const hexdigits = "0123456789ABCDEF"
	out := make([]byte, 0, n)
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if safe(c) {
			out = append(out, c)
		} else {
			out = append(out, '%', hexdigits[c>>4], hexdigits[c&15])
		}
	}
	return string(out)
}

// Topic reverses Token. It fails for hashed tokens and for text Token does not produce.
func Topic(token string) (string, error) {
	if strings.HasPrefix(token, "%H") {
		return "", errors.New("natsbroker: hashed token")
	}
	out := make([]byte, 0, len(token))
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case safe(c):
			out = append(out, c)
		case c == '%' && i+2 < len(token) && upperHex(token[i+1]) && upperHex(token[i+2]):
			v, _ := hex.DecodeString(token[i+1 : i+3])
			out = append(out, v[0])
			i += 2
		default:
			return "", fmt.Errorf("natsbroker: %q is not an escaped topic", token)
		}
	}
	return string(out), nil
}

func safe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_~:/=@+,!", c) >= 0
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// validPrefix checks that p is one or more subject tokens without wildcards.
func validPrefix(p string) error {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.IndexFunc(tok, unicode.IsSpace) >= 0 {
			return fmt.Errorf("natsbroker: prefix %q is not a subject without wildcards", p)
		}
	}
	return nil
}

var _ live.Broker = (*Broker)(nil)
