package live

import (
	"hash/maphash"
	"sync"
)

// registryShards spreads topics over independently locked maps, so subscribing to one
// topic does not wait on publishing or subscribing to another.
const registryShards = 64

// registry maps topic names to their subscribers. Lock order: Session.smu, then a shard's
// mu, then a topic's mu. No session's wmu is taken under them: Publish copies the
// subscribers out (snapshot) and writes after releasing the topic's lock.
type registry struct {
	seed   maphash.Seed
	shards [registryShards]shard
	// interest, when set, is told (under the shard lock) the name of a topic that was
	// just created or dropped.
	interest func(name string)
}

type shard struct {
	mu     sync.RWMutex
	topics map[string]*topic
}

// topic is one topic's subscriber list. subs is a dense slice so Publish walks it without
// allocating; index finds a session's position for O(1) removal (swap with the last).
type topic struct {
	name  string
	json  []byte // name as a JSON string, encoded once for every Publish
	mu    sync.RWMutex
	subs  []*Session
	index map[*Session]int
}

func newRegistry() *registry {
	r := &registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].topics = make(map[string]*topic)
	}
	return r
}

func (r *registry) shard(name string) *shard {
	return &r.shards[maphash.String(r.seed, name)%registryShards]
}

// subscribe adds s to the named topic; it reports whether s was not already subscribed.
func (r *registry) subscribe(s *Session, name string) (*topic, bool) {
	sh := r.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.topics[name]
	if t == nil {
		t = &topic{name: name, json: topicJSON(name), index: make(map[*Session]int)}
		sh.topics[name] = t
		if r.interest != nil {
			r.interest(name)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.index[s]; ok {
		return t, false
	}
	t.index[s] = len(t.subs)
	t.subs = append(t.subs, s)
	return t, true
}

// unsubscribe removes s from t and drops t from the registry once it has no subscribers.
func (r *registry) unsubscribe(s *Session, t *topic) {
	sh := r.shard(t.name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[s]
	if !ok {
		return
	}
	last := len(t.subs) - 1
	if i != last {
		moved := t.subs[last]
		t.subs[i] = moved
		t.index[moved] = i
	}
	t.subs[last] = nil
	t.subs = t.subs[:last]
	delete(t.index, s)
	if len(t.subs) == 0 && sh.topics[t.name] == t {
		delete(sh.topics, t.name)
		if r.interest != nil {
			r.interest(t.name)
		}
	} else if cap(t.subs) > 64 && len(t.subs) < cap(t.subs)/4 {
		t.subs = append([]*Session(nil), t.subs...) // give back memory after a crowd leaves
	}
}

// snapshot copies the subscribers of the named topic into dst and returns the topic's
// name as JSON (nil when nobody subscribes). The locks are held only for the copy, a few
// nanoseconds per subscriber, against a system call per subscriber to deliver.
func (r *registry) snapshot(name string, dst *subscribers) []byte {
	sh := r.shard(name)
	sh.mu.RLock()
	t := sh.topics[name]
	if t == nil {
		sh.mu.RUnlock()
		return nil
	}
	t.mu.RLock()
	sh.mu.RUnlock()
	dst.list = append(dst.list[:0], t.subs...)
	t.mu.RUnlock()
	return t.json
}

// subscribers is a pooled list of sessions for one Publish.
type subscribers struct{ list []*Session }

var subscriberLists = sync.Pool{New: func() any { return new(subscribers) }}

func getSubscribers() *subscribers { return subscriberLists.Get().(*subscribers) }

// putSubscribers clears the list (a pooled list must not keep closed sessions alive) and
// keeps it unless a crowd made it large.
func putSubscribers(l *subscribers) {
	clear(l.list)
	l.list = l.list[:0]
	if cap(l.list) <= 1<<16 {
		subscriberLists.Put(l)
	}
}

// has reports whether topic has subscribers.
func (r *registry) has(name string) bool {
	sh := r.shard(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.topics[name] != nil
}

// counts reports the number of topics and of subscriptions.
func (r *registry) counts() (topics, subscriptions int) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		topics += len(sh.topics)
		for _, t := range sh.topics {
			t.mu.RLock()
			subscriptions += len(t.subs)
			t.mu.RUnlock()
		}
		sh.mu.RUnlock()
	}
	return topics, subscriptions
}
