package live

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/livepoll/livepoll/pool"
)

// Fan-out of one frame to a topic's subscribers. Handing a frame to a session costs about
// one write() (~9 µs on loopback), so a topic of 10,000 subscribers takes ~90 ms on one
// core. Large topics are therefore cut into chunks that the publishing goroutine and a few
// pool workers take in turn: the caller never waits for a worker to start (it takes chunks
// itself, and only waits for chunks already being written), and Publish returns after
// every subscriber has the frame, so successive Publish calls from one goroutine still
// reach each subscriber in order.

const (
	// fanoutChunk is how many sessions one worker takes at a time.
	fanoutChunk = 256
	// fanoutParallel is the smallest topic written by more than one goroutine; below it
	// the hand-off costs more than it saves.
	fanoutParallel = 4 * fanoutChunk
)

// fanout is one Publish's shared state while workers help with it. It returns to
// fanoutPool when its last user (the caller or a helper) lets go of it.
type fanout struct {
	subs    []*Session
	frame   *pool.Shared
	next    atomic.Int64 // next chunk to take
	left    atomic.Int64 // chunks not yet written
	refs    atomic.Int32 // the caller and every helper not yet returned
	done    chan struct{}
	waiting atomic.Bool // the caller is blocked on done
}

// sharedFanouts counts Publish calls that handed chunks to workers (tests check that the
// parallel path ran).
var sharedFanouts atomic.Uint64

var fanoutPool = sync.Pool{New: func() any { return &fanout{done: make(chan struct{}, 1)} }}

// deliverAll hands f to every session of subs. The caller holds the topic's read lock, so
// subs does not change until deliverAll returns.
func (srv *Server) deliverAll(subs []*Session, f *pool.Shared) {
	helpers := 0
	if len(subs) >= fanoutParallel && srv.eng != nil {
		helpers = min(runtime.GOMAXPROCS(0)-1, (len(subs)+fanoutChunk-1)/fanoutChunk-1)
	}
	if helpers <= 0 {
		for _, s := range subs {
			_ = s.deliver(f)
		}
		return
	}
	sharedFanouts.Add(1)
	j := fanoutPool.Get().(*fanout)
	j.subs, j.frame = subs, f
	j.next.Store(0)
	j.left.Store(int64((len(subs) + fanoutChunk - 1) / fanoutChunk))
	j.refs.Store(int32(1 + helpers))
	for range helpers {
		if !srv.eng.pool.Submit((*fanoutHelper)(j)) {
			j.unref() // pool closed: the caller does the work
		}
	}
	j.work()
	if j.left.Load() > 0 {
		j.waiting.Store(true)
		if j.left.Load() > 0 {
			<-j.done
		} else if !j.waiting.CompareAndSwap(true, false) {
			<-j.done // the last helper saw waiting and is signalling
		}
	}
	j.unref()
}

// work writes chunks until none is left to take.
func (j *fanout) work() {
	n := int64(len(j.subs))
	for {
		c := j.next.Add(1) - 1
		lo := c * fanoutChunk
		if lo >= n {
			return
		}
		for _, s := range j.subs[lo:min(lo+fanoutChunk, n)] {
			_ = s.deliver(j.frame)
		}
		if j.left.Add(-1) == 0 && j.waiting.CompareAndSwap(true, false) {
			j.done <- struct{}{}
		}
	}
}

// unref drops one user; the last one clears the job and pools it.
func (j *fanout) unref() {
	if j.refs.Add(-1) == 0 {
		j.subs, j.frame = nil, nil
		fanoutPool.Put(j)
	}
}

// fanoutHelper is a fanout run by a pool worker.
type fanoutHelper fanout

func (h *fanoutHelper) Run() {
	j := (*fanout)(h)
	j.work()
	j.unref()
}
