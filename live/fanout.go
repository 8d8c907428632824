package live

import (
	"sync"
	"sync/atomic"

	"github.com/livepoll/livepoll/pool"
)

// Fan-out of one frame to a large topic. Handing a frame to a session costs about one
// write() (~9 µs on loopback here), so writing a topic of 10,000 subscribers takes ~90 ms
// of one core. For topics of fanoutLarge subscribers or more, Publish only queues the frame
// on every subscriber (a lock and an append each) and hands the sessions whose queue was
// empty to pool workers in batches of fanoutBatch, which write their queues with writev.
// So the writing is spread over the CPUs, and Publish returns after about a millisecond:
// a publisher that goes on publishing adds its next frames to queues that have not been
// written yet, and those go out together in one writev — under load, fewer system calls
// per delivery; at a low rate, the same latency as writing at once. Order per session is
// the queue's order. Smaller topics are written by the caller directly, as before.

const (
	// fanoutBatch is how many sessions one worker task flushes.
	fanoutBatch = 256
	// fanoutLarge is the smallest topic whose writes are handed to workers.
	fanoutLarge = 4 * fanoutBatch
	// ringDirectMin is the smallest topic the publisher itself writes through an
	// io_uring ring (one io_uring_enter for the topic instead of one write per
	// subscriber) when one is free.
	ringDirectMin = 8
)

// deferredFanouts counts Publish calls that handed writes to workers (tests check that
// the path ran).
var deferredFanouts atomic.Uint64

// flushBatch is a pool task that flushes the queues of up to fanoutBatch sessions.
type flushBatch struct {
	srv      *Server
	n        int
	sessions [fanoutBatch]*Session
}

var flushBatches = sync.Pool{New: func() any { return new(flushBatch) }}

func (b *flushBatch) Run() {
	if r := b.srv.eng.rings.get(b.srv); r != nil {
		b.srv.eng.rings.put(r, b.flushRing(r))
	} else {
		for _, s := range b.sessions[:b.n] {
			s.flush()
		}
	}
	clear(b.sessions[:b.n])
	b.srv = nil
	b.n = 0
	flushBatches.Put(b)
}

// deliverAll hands f to every session of subs, a snapshot of a topic's subscribers; the
// sessions that negotiated compression get its compressed form, made once.
func (srv *Server) deliverAll(subs []*Session, f *pool.Shared) {
	m := outgoing{plain: f}
	defer m.release()
	if len(subs) < fanoutLarge || srv.eng == nil {
		if len(subs) >= ringDirectMin && srv.eng != nil && srv.deliverRing(subs, &m) {
			return
		}
		for _, s := range subs {
			_ = s.deliver(m.frameFor(s))
		}
		return
	}
	deferredFanouts.Add(1)
	var b *flushBatch
	for _, s := range subs {
		if !s.enqueue(m.frameFor(s)) {
			continue
		}
		if b == nil {
			b = flushBatches.Get().(*flushBatch)
			b.srv = srv
		}
		b.sessions[b.n] = s
		if b.n++; b.n == fanoutBatch {
			srv.submitFlush(b)
			b = nil
		}
	}
	if b != nil {
		srv.submitFlush(b)
	}
}

// deliverRing writes m to a topic smaller than fanoutLarge from the publisher's goroutine,
// through a ring: each subscriber's form of m is queued and the queues that were empty are
// written in one io_uring_enter per fanoutBatch sessions. It reports false, having done
// nothing, when no ring is free (io_uring unavailable, or every ring in use).
func (srv *Server) deliverRing(subs []*Session, m *outgoing) bool {
	r := srv.eng.rings.get(srv)
	if r == nil {
		return false
	}
	b := flushBatches.Get().(*flushBatch)
	b.srv = srv
	failed := false
	for _, s := range subs {
		if !s.enqueue(m.frameFor(s)) {
			continue
		}
		b.sessions[b.n] = s
		if b.n++; b.n == fanoutBatch {
			failed = b.flushRing(r) || failed
			clear(b.sessions[:b.n])
			b.n = 0
		}
	}
	if b.n > 0 {
		failed = b.flushRing(r) || failed
		clear(b.sessions[:b.n])
		b.n = 0
	}
	srv.eng.rings.put(r, failed)
	b.srv = nil
	flushBatches.Put(b)
	return true
}

func (srv *Server) submitFlush(b *flushBatch) {
	if !srv.eng.pool.Submit(b) {
		b.Run() // the pool is closed (shutting down): write here
	}
}

// enqueue queues f for the session without writing it. It reports whether the caller must
// arrange a flush: the queue was empty, so nobody else (a pending flush, the poller's
// next writable edge, the portable path's writer) will write it.
func (s *Session) enqueue(f *pool.Shared) bool {
	if s.lockForSend() != nil {
		return false
	}
	s.pushLocked(f)
	if s.blk != nil {
		s.blk.wakeWriter()
		s.wmu.Unlock()
		return false
	}
	first := len(s.q) == 1
	s.wmu.Unlock()
	return first
}
