package live

import (
	"errors"

	"github.com/livepoll/livepoll/pool"
)

// The write path. Frames are written straight to the socket by whichever goroutine sends
// them (the publisher, usually) when nothing is waiting ahead of them; what the socket
// does not take waits in the session's queue and is written, coalesced with writev, when
// the poller says the socket is writable again. All of it runs under wmu, so frames never
// interleave and nothing is written after the descriptor is closed.
//
// The queue is bounded twice: Options.QueueSize frames and Options.QueueBytes bytes (each
// frame counts the pooled buffer it holds; a frame shared by many sessions counts against
// each). A send that finds either bound reached closes the session with ErrQueueFull.
// Before that, at half of either bound (the high-water mark), the session stops reading
// its socket, so a client that sends requests and does not read the answers is held back
// by TCP instead of growing its queue; reading resumes once the queue is down to a quarter.

// maxIovecs bounds one writev call.
const maxIovecs = 64

// errWriteFailed reports that lockForSend ended the session on a write error.
var errWriteFailed = errors.New("live: write failed")

// lockForSend takes wmu for one more outgoing frame. It returns nil with wmu held, or,
// with wmu released: ErrSessionClosed (the session is closing or closed), ErrQueueFull
// (the session's queue was full and it is now closed for it), or errWriteFailed (writing
// the queue failed and the session is ending).
func (s *Session) lockForSend() error {
	s.wmu.Lock()
	if s.state.Load() != stateOpen || !s.fdOpen {
		s.wmu.Unlock()
		return ErrSessionClosed
	}
	full, err := s.queueFullLocked()
	if !full && err == nil {
		return nil
	}
	s.wmu.Unlock()
	if err != nil {
		s.writeFailed(err)
		return errWriteFailed
	}
	s.closeWith(ErrQueueFull, statusPolicy, "send queue full")
	return ErrQueueFull
}

// deliver sends one frame to the session (the caller keeps its own reference to f). A
// write error ends the session but is not the sender's: it returns nil then.
func (s *Session) deliver(f *pool.Shared) error {
	if err := s.lockForSend(); err != nil {
		if err == errWriteFailed {
			return nil
		}
		return err
	}
	err := s.enqueueLocked(f)
	s.wmu.Unlock()
	if err != nil {
		s.writeFailed(err)
	}
	return nil
}

// queueFullLocked reports whether the queue holds QueueSize frames or QueueBytes bytes.
// Frames queued by a large fan-out wait for a pool worker even when the socket would take
// them; before calling the client slow, they are written here, so only a socket that
// really does not take them (EAGAIN) fills the queue. err is a write error other than
// EAGAIN.
func (s *Session) queueFullLocked() (full bool, err error) {
	if !s.atLimitLocked() {
		return false, nil
	}
	if s.blk != nil {
		return true, nil
	}
	if err := s.flushLocked(); err != nil {
		return false, err
	}
	return s.atLimitLocked(), nil
}

func (s *Session) atLimitLocked() bool {
	return len(s.q) >= s.srv.opts.QueueSize || int(s.qbytes) >= s.srv.opts.QueueBytes
}

// aboveHighWaterLocked reports whether the queue is at half of either of its bounds.
func (s *Session) aboveHighWaterLocked() bool {
	return 2*len(s.q) >= s.srv.opts.QueueSize || 2*int(s.qbytes) >= s.srv.opts.QueueBytes
}

// outputHigh reports whether the outgoing queue is above its high-water mark.
func (s *Session) outputHigh() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.aboveHighWaterLocked()
}

// pauseForOutput stops reading while the queue is above its high-water mark: it reports
// true and marks the session, so that the flush that brings the queue down resumes it.
func (s *Session) pauseForOutput() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.aboveHighWaterLocked() {
		return false
	}
	if !s.outPaused {
		s.outPaused = true
		s.srv.stats.outputPauses.Add(1)
	}
	return true
}

// maxFrameCost caps what one frame counts against QueueBytes (itself capped at
// maxQueueBytes), so that the queue's count fits an int32: a Session is allocated per
// connection and every field counts. A frame this large closes the queue to more anyway.
const (
	maxFrameCost  = 1 << 29
	maxQueueBytes = 1 << 30
)

// frameCost is what a queued frame counts against QueueBytes: the pooled buffer it holds.
func frameCost(f *pool.Shared) int32 { return int32(min(f.Size(), maxFrameCost)) }

// pushLocked appends f (one more reference) to the queue. A TLS session queues its own
// sealed copy instead (tls_write.go), so its queue holds only bytes for the socket.
func (s *Session) pushLocked(f *pool.Shared) {
	if s.tls != nil {
		s.pushSealedLocked(f)
		return
	}
	f.Retain()
	s.q = append(s.q, f)
	s.qbytes += frameCost(f)
}

// enqueueLocked writes f directly when the queue is empty, and queues what the socket did
// not take. It returns a write error other than EAGAIN.
func (s *Session) enqueueLocked(f *pool.Shared) error {
	if s.blk != nil {
		s.pushLocked(f)
		s.blk.wakeWriter()
		return nil
	}
	if len(s.q) > 0 {
		s.pushLocked(f)
		return nil
	}
	if s.tls != nil {
		return s.writeSealedLocked(f)
	}
	n, err := writeAll(int(s.fd), f.B)
	if n == len(f.B) {
		s.srv.stats.bytesOut.Add(uint64(n))
		return nil
	}
	if err != nil {
		return err
	}
	s.pushLocked(f)
	s.qoff = int32(n)
	return nil
}

// writeAll writes p until it is all written, the socket would block (n < len(p), nil
// error), or an error occurs.
func writeAll(fd int, p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := sysWrite(fd, p[written:])
		if n > 0 {
			written += n
		}
		switch err {
		case nil:
		case errInterrupted:
		case errWouldBlock:
			return written, nil
		default:
			return written, err
		}
	}
	return written, nil
}

// flush writes queued frames (the socket became writable, or a fan-out worker's turn).
func (s *Session) flush() {
	s.wmu.Lock()
	if len(s.q) == 0 || !s.fdOpen {
		s.wmu.Unlock()
		return
	}
	err := s.flushLocked()
	s.wmu.Unlock()
	if err != nil {
		s.writeFailed(err)
	}
}

// tryFlush is flush for the poller's goroutine, which must not wait for wmu (a publisher
// holds it across write calls): it reports false, having done nothing, when wmu is taken
// or the write failed, and the session's own task must flush instead.
func (s *Session) tryFlush() bool {
	if !s.wmu.TryLock() {
		return false
	}
	defer s.wmu.Unlock()
	if len(s.q) == 0 || !s.fdOpen || s.blk != nil {
		return true
	}
	return s.flushLocked() == nil
}

func (s *Session) flushLocked() error {
	var iov [maxIovecs][]byte
	for len(s.q) > 0 {
		bufs := iov[:0]
		for i, f := range s.q {
			if i == maxIovecs {
				break
			}
			b := f.B
			if i == 0 {
				b = b[s.qoff:]
			}
			bufs = append(bufs, b)
		}
		n, err := sysWritev(int(s.fd), bufs)
		if err == errInterrupted {
			continue
		}
		if n > 0 {
			s.consumeLocked(n)
		}
		if err == errWouldBlock {
			return nil // the poller reports the next writable edge
		}
		if err != nil {
			return err
		}
		// A short write without EAGAIN: try again; only EAGAIN promises an edge.
	}
	s.shutdownIfDrainedLocked()
	return nil
}

// consumeLocked drops n written bytes from the front of the queue.
func (s *Session) consumeLocked(n int) {
	s.srv.stats.bytesOut.Add(uint64(n))
	i := 0
	for i < len(s.q) {
		left := len(s.q[i].B) - int(s.qoff)
		if n < left {
			s.qoff += int32(n)
			break
		}
		n -= left
		s.qoff = 0
		s.qbytes -= frameCost(s.q[i])
		s.q[i].Release()
		s.q[i] = nil
		i++
	}
	if i == len(s.q) {
		if cap(s.q) > 16 {
			s.q = nil // an idle session keeps no large queue
		} else {
			s.q = s.q[:0]
		}
	} else {
		n = copy(s.q, s.q[i:])
		clear(s.q[n:])
		s.q = s.q[:n]
	}
	s.resumeIfDrainedLocked()
}

// resumeIfDrainedLocked resumes reading of a session paused by its queue once the queue is
// down to a quarter of its bounds.
func (s *Session) resumeIfDrainedLocked() {
	if s.outPaused && 4*len(s.q) <= s.srv.opts.QueueSize && 4*int(s.qbytes) <= s.srv.opts.QueueBytes {
		s.outPaused = false
		s.raise(workRead | workDrain)
	}
}

// dropQueuedLocked discards queued frames that have not started to go out; a frame half
// written stays so the stream of frames remains well formed.
func (s *Session) dropQueuedLocked() {
	if s.tls != nil {
		// Queued records are sealed under consecutive sequence numbers: dropping any
		// would make every later record, the close frame's too, fail to authenticate.
		return
	}
	keep := 0
	if len(s.q) > 0 && s.qoff > 0 {
		keep = 1
	}
	for i := keep; i < len(s.q); i++ {
		s.qbytes -= frameCost(s.q[i])
		s.q[i].Release()
		s.q[i] = nil
	}
	s.q = s.q[:keep]
}

// releaseQueueLocked drops every queued frame (the socket is going away).
func (s *Session) releaseQueueLocked() {
	for i, f := range s.q {
		f.Release()
		s.q[i] = nil
	}
	s.q, s.qoff, s.qbytes = nil, 0, 0
}
