package pubsub

import (
	"iter"
	"sync"
)

// Subscriptions is what a Registry keeps on a connection: the topics it is
// subscribed to, so that UnsubscribeAll need not search every topic. Embed
// it in the connection type; the Registry's lock guards it.
type Subscriptions struct {
	topics map[string]struct{}
}

func (s *Subscriptions) subscriptions() *Subscriptions { return s }

// Subscriber is a connection type for a Registry: a pointer to a struct that
// embeds Subscriptions.
type Subscriber interface {
	comparable
	subscriptions() *Subscriptions
}

// Registry is the app's topic → set of connections map under an RWMutex.
// The zero value is empty and ready to use.
type Registry[C Subscriber] struct {
	mu     sync.RWMutex
	topics map[string]map[C]struct{}
}

// Subscribe adds c to topic's subscribers.
func (r *Registry[C]) Subscribe(c C, topic string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.topics == nil {
		r.topics = make(map[string]map[C]struct{})
	}
	subs := r.topics[topic]
	if subs == nil {
		subs = make(map[C]struct{})
		r.topics[topic] = subs
	}
	subs[c] = struct{}{}
	s := c.subscriptions()
	if s.topics == nil {
		s.topics = make(map[string]struct{})
	}
	s.topics[topic] = struct{}{}
}

// Handle runs cmd, a message from c: subscribe and unsubscribe on r,
// publish and echo through s.
func (r *Registry[C]) Handle(c C, cmd Command, s Sender[C]) {
	switch cmd.Op {
	case OpSubscribe:
		r.Subscribe(c, cmd.Topic)
	case OpUnsubscribe:
		r.Unsubscribe(c, cmd.Topic)
	case OpPublish:
		s.Publish(cmd.Topic, cmd.Data)
	case OpEcho:
		s.Echo(c, cmd.Data)
	}
}

// Unsubscribe removes c from topic's subscribers.
func (r *Registry[C]) Unsubscribe(c C, topic string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.remove(c, topic)
	delete(c.subscriptions().topics, topic)
}

// UnsubscribeAll removes c from every topic it is subscribed to; for a
// connection that has closed.
func (r *Registry[C]) UnsubscribeAll(c C) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := c.subscriptions()
	for topic := range s.topics {
		r.remove(c, topic)
	}
	s.topics = nil
}

// remove drops c from topic's subscribers; r.mu must be held.
func (r *Registry[C]) remove(c C, topic string) {
	if subs := r.topics[topic]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(r.topics, topic)
		}
	}
}

// Subscribers yields topic's subscribers while holding the read lock, for
// the whole loop: its body must not block, nor call the Registry's methods.
// A sender that can end up in UnsubscribeAll on the same goroutine (a write
// error that runs the close handler at once) takes a Snapshot instead.
func (r *Registry[C]) Subscribers(topic string) iter.Seq[C] {
	return func(yield func(C) bool) {
		r.mu.RLock()
		defer r.mu.RUnlock()
		for c := range r.topics[topic] {
			if !yield(c) {
				return
			}
		}
	}
}

// Snapshot returns a copy of topic's subscribers, made under the read lock.
func (r *Registry[C]) Snapshot(topic string) []C {
	r.mu.RLock()
	defer r.mu.RUnlock()
	subs := make([]C, 0, len(r.topics[topic]))
	for c := range r.topics[topic] {
		subs = append(subs, c)
	}
	return subs
}
