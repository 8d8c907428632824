package live

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/livepoll/livepoll/internal/uring"
)

// Fan-out writes through io_uring. A flush batch of up to fanoutBatch sessions is written
// with one io_uring_enter instead of one writev per session: a system call crossing costs
// about 3 µs where the kernel isolates page tables (as on the machine livepoll is measured
// on), which is a large part of a small delivery. Where io_uring is unavailable (not
// Linux, an old kernel, a seccomp filter, kernel.io_uring_disabled) batches use writev as
// before; the first failure to create a ring is logged once and turns the path off for
// the server.
//
// A batch takes each session's write lock with TryLock only: a session whose lock is held
// (its own task answering, a publisher writing) is flushed afterwards with a plain flush,
// once the batch holds no lock, so two batches can never wait for each other's sessions.

// noRing turns the io_uring path off (tests of the writev path).
var noRing atomic.Bool

// ringFlushes counts batches written through a ring (tests check that the path ran).
var ringFlushes atomic.Uint64

// ringPool lends rings to flush batches, one per running batch.
type ringPool struct {
	mu       sync.Mutex
	free     []*uring.Ring
	made     int
	max      int
	disabled bool // no new rings: io_uring is unavailable, or the server stopped
	checked  bool // a ring passed CheckNowait
	closed   bool // the server stopped: rings given back are closed
}

func (p *ringPool) get(srv *Server) *uring.Ring {
	if noRing.Load() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		r := p.free[n-1]
		p.free = p.free[:n-1]
		return r
	}
	if p.disabled || p.made >= p.max {
		return nil // more batches at once than rings: this one uses writev
	}
	r, err := uring.New(fanoutBatch)
	if err == nil && !p.checked {
		// Once per server: a kernel that lets a non-blocking send wait would let one
		// slow client hold a whole batch.
		if err = r.CheckNowait(); err != nil {
			r.Close()
			r = nil
			err = permanent{err}
		} else {
			p.checked = true
		}
	}
	if err != nil {
		if isPermanent(err) {
			p.disabled = true
			srv.opts.Logger.Info("live: io_uring unavailable, fan-out batches use writev", "err", err)
		}
		return nil // short of descriptors or memory now: writev for this batch, try later
	}
	p.made++
	return r
}

// permanent marks an io_uring failure that retrying will not mend.
type permanent struct{ error }

// isPermanent tells a kernel that has no usable io_uring (not built in, forbidden by
// seccomp or kernel.io_uring_disabled, or misbehaving) from a passing shortage of
// descriptors or memory.
func isPermanent(err error) bool {
	var p permanent
	if errors.As(err, &p) {
		return true
	}
	return !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) && !errors.Is(err, syscall.ENOMEM) && !errors.Is(err, syscall.EAGAIN)
}

// put returns r; a ring that failed is closed instead.
func (p *ringPool) put(r *uring.Ring, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if failed || p.closed {
		_ = r.Close()
		p.made--
		return
	}
	p.free = append(p.free, r)
}

// close releases the idle rings; called once the pool's workers have exited.
func (p *ringPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.free {
		_ = r.Close()
	}
	p.free, p.disabled, p.closed = nil, true, true
}

// flushRing writes the batch's queues through r. It reports whether the ring failed (the
// sessions were then written with writev).
func (b *flushBatch) flushRing(r *uring.Ring) (failed bool) {
	var held [fanoutBatch]*Session
	var res [fanoutBatch]int32
	var bufs [uring.MaxBufs][]byte
	// Write errors end their session through writeFailed, which takes that session's
	// lock and the pool's: called once this batch holds no other session's lock.
	var failures []writeFailure
	n, busy := 0, 0
	for _, s := range b.sessions[:b.n] {
		if !s.wmu.TryLock() {
			b.sessions[busy] = s // flushed below, once no lock is held
			busy++
			continue
		}
		if len(s.q) == 0 || !s.fdOpen || s.blk != nil {
			s.wmu.Unlock()
			continue
		}
		if r.Prepare(int(s.fd), s.queuedLocked(bufs[:0])) < 0 {
			// The ring failed in an earlier batch of this Publish: write here.
			if err := s.flushLocked(); err != nil {
				failures = append(failures, writeFailure{s, err})
			}
			s.wmu.Unlock()
			continue
		}
		held[n] = s
		n++
	}
	err := r.Submit(res[:n])
	ringFlushes.Add(1)
	for i, s := range held[:n] {
		var werr error
		switch rc := res[i]; {
		case rc == uring.NotSent:
			werr = s.flushLocked() // the ring failed before the kernel took it: write here
		case rc > 0:
			s.consumeLocked(int(rc))
			werr = s.flushLocked() // the rest if any; marks a drained close frame
		case rc == -int32(syscall.EAGAIN):
			// Full socket: the poller reports its next writable edge.
		case rc == -int32(syscall.EINTR) || rc == 0:
			werr = s.flushLocked()
		default:
			werr = syscall.Errno(-rc)
		}
		if werr != nil {
			failures = append(failures, writeFailure{s, werr})
		}
	}
	for _, s := range held[:n] {
		s.wmu.Unlock()
	}
	for _, f := range failures {
		f.s.writeFailed(f.err)
	}
	for _, s := range b.sessions[:busy] {
		s.flush()
	}
	return err != nil
}

type writeFailure struct {
	s   *Session
	err error
}

// queuedLocked appends the queued, unwritten bytes to bufs (up to its capacity).
func (s *Session) queuedLocked(bufs [][]byte) [][]byte {
	for i, f := range s.q {
		if len(bufs) == cap(bufs) {
			break
		}
		b := f.B
		if i == 0 {
			b = b[s.qoff:]
		}
		bufs = append(bufs, b)
	}
	return bufs
}
