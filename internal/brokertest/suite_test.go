package brokertest

import (
	"sync"
	"testing"

	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/live"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// memoryCluster runs the suite against live.MemoryBroker, counting each node's
// subscriptions as a broker server would.
type memoryCluster struct {
	mb *live.MemoryBroker
	mu sync.Mutex
	n  map[string]int
}

type countingNode struct {
	live.Broker
	c *memoryCluster
}

func (n countingNode) Subscribe(topic string) error {
	if err := n.Broker.Subscribe(topic); err != nil {
		return err
	}
	n.c.mu.Lock()
	n.c.n[topic]++
	n.c.mu.Unlock()
	return nil
}

func (n countingNode) Unsubscribe(topic string) error {
	if err := n.Broker.Unsubscribe(topic); err != nil {
		return err
	}
	n.c.mu.Lock()
	n.c.n[topic]--
	n.c.mu.Unlock()
	return nil
}

func memoryHarness() Harness {
	c := &memoryCluster{mb: live.NewMemoryBroker(), n: make(map[string]int)}
	return Harness{
		NewBroker: func(t *testing.T) live.Broker { return countingNode{c.mb.Node(), c} },
		Interest: func(t *testing.T, topic string) int {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.n[topic]
		},
	}
}

func TestMemoryDelivery(t *testing.T) { RunDelivery(t, memoryHarness()) }
func TestMemoryInterest(t *testing.T) { RunInterest(t, memoryHarness()) }
func TestMemoryTopics(t *testing.T)   { RunTopics(t, memoryHarness()) }
