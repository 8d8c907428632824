package live

import (
	"errors"
	"sync"
)

// MemoryBroker joins Servers of one process into a cluster: give each Server its own
// Broker from Node. A Publish on one Server reaches the subscribers of every other Server
// that has any for the topic, synchronously and in order, before Publish returns. It is
// meant for tests and for running several Servers in one process (one per listener, say);
// across processes use a real broker (docs/scaling.md). The zero value is not usable.
type MemoryBroker struct {
	mu    sync.RWMutex
	nodes map[*memoryNode]struct{}
}

// NewMemoryBroker returns an empty in-process cluster.
func NewMemoryBroker() *MemoryBroker {
	return &MemoryBroker{nodes: make(map[*memoryNode]struct{})}
}

// Node returns a new member's Broker, for Options.Broker.
func (b *MemoryBroker) Node() Broker {
	return &memoryNode{b: b, topics: make(map[string]struct{})}
}

// memoryNode is one Server's membership. Its topics are guarded by the broker's mu, so a
// Publish sees a consistent set of interested nodes.
type memoryNode struct {
	b      *MemoryBroker
	node   BrokerNode
	topics map[string]struct{}
	// sending serialises deliveries to this node per topic: Deliver calls for one topic
	// must not overlap. Publishers of one topic on different nodes may run concurrently.
	sending sync.Mutex
}

var errMemoryNodeStarted = errors.New("live: MemoryBroker node started twice")

func (n *memoryNode) Start(node BrokerNode) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if n.node != nil {
		return errMemoryNodeStarted
	}
	n.node = node
	n.b.nodes[n] = struct{}{}
	node.Connected()
	return nil
}

var errMemoryNodeClosed = errors.New("live: MemoryBroker node closed")

func (n *memoryNode) Publish(topic string, data []byte) error {
	n.b.mu.RLock()
	defer n.b.mu.RUnlock()
	if _, member := n.b.nodes[n]; !member {
		return errMemoryNodeClosed
	}
	for peer := range n.b.nodes {
		if peer == n {
			continue
		}
		if _, ok := peer.topics[topic]; ok {
			peer.sending.Lock()
			peer.node.Deliver(topic, data)
			peer.sending.Unlock()
		}
	}
	return nil
}

func (n *memoryNode) Subscribe(topic string) error {
	n.b.mu.Lock()
	n.topics[topic] = struct{}{}
	n.b.mu.Unlock()
	return nil
}

func (n *memoryNode) Unsubscribe(topic string) error {
	n.b.mu.Lock()
	delete(n.topics, topic)
	n.b.mu.Unlock()
	return nil
}

func (n *memoryNode) Close() error {
	n.b.mu.Lock()
	delete(n.b.nodes, n)
	n.b.mu.Unlock()
	return nil
}
