package live

import (
	"errors"
	"os"

	"github.com/livepoll/livepoll/pool"
)

// The write path. Frames are written straight to the socket by whichever goroutine sends
// them (the publisher, usually) when nothing is waiting ahead of them; what the socket
// does not take waits in the session's queue and is written, coalesced with writev, when
// the poller says the socket is writable again. All of it runs under wmu, so frames never
// interleave and nothing is written after the descriptor is closed.

// maxIovecs bounds one writev call.
const maxIovecs = 64

// errWriteFailed reports that lockForSend ended the session on a write error.
var errWriteFailed = errors.New("live: write failed")

// lockForSend takes wmu for one more outgoing frame. It returns nil with wmu held, or,
// with wmu released: ErrSessionClosed (the session is closing or closed), ErrQueueFull
// (the session had QueueSize frames waiting and is now closed for it), or errWriteFailed
// (writing the queue failed and the session is ending).
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
	s.closeWith(ErrQueueFull, statusQueueFull, "send queue full")
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

// queueFullLocked reports whether the session has QueueSize frames waiting. Frames queued
// by a large fan-out wait for a pool worker even when the socket would take them; before
// calling the client slow, they are written here, so only a socket that really does not
// take them (EAGAIN) fills the queue. err is a write error other than EAGAIN.
func (s *Session) queueFullLocked() (full bool, err error) {
	if len(s.q) < s.srv.opts.QueueSize {
		return false, nil
	}
	if s.blk != nil {
		return true, nil
	}
	if err := s.flushLocked(); err != nil {
		return false, err
	}
	return len(s.q) >= s.srv.opts.QueueSize, nil
}

// enqueueLocked writes f directly when the queue is empty, and queues what the socket did
// not take. It returns a write error other than EAGAIN.
func (s *Session) enqueueLocked(f *pool.Shared) error {
	if s.blk != nil {
		f.Retain()
		s.q = append(s.q, f)
		s.blk.wakeWriter()
		return nil
	}
	if len(s.q) > 0 {
		f.Retain()
		s.q = append(s.q, f)
		return nil
	}
	n, err := writeAll(s.fd, f.B)
	if n == len(f.B) {
		s.srv.stats.bytesOut.Add(uint64(n))
		return nil
	}
	if err != nil {
		return err
	}
	f.Retain()
	s.q = append(s.q, f)
	s.qoff = n
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

// flush writes queued frames after the poller reported the socket writable.
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
		n, err := sysWritev(s.fd, bufs)
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
		left := len(s.q[i].B) - s.qoff
		if n < left {
			s.qoff += n
			break
		}
		n -= left
		s.qoff = 0
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
		return
	}
	n = copy(s.q, s.q[i:])
	clear(s.q[n:])
	s.q = s.q[:n]
}

// dropQueuedLocked discards queued frames that have not started to go out; a frame half
// written stays so the stream of frames remains well formed.
func (s *Session) dropQueuedLocked() {
	keep := 0
	if len(s.q) > 0 && s.qoff > 0 {
		keep = 1
	}
	for i := keep; i < len(s.q); i++ {
		s.q[i].Release()
		s.q[i] = nil
	}
	s.q = s.q[:keep]
}

// shutdownIfDrainedLocked shuts the write side once a queued close frame has gone out, so
// the client reads the close frame and then EOF, never a reset.
func (s *Session) shutdownIfDrainedLocked() {
	if s.shutWr && len(s.q) == 0 && s.fdOpen && s.blk == nil {
		s.shutWr = false
		_ = sysShutdownWrite(s.fd)
	}
}

// releaseQueueLocked drops every queued frame (the socket is going away).
func (s *Session) releaseQueueLocked() {
	for i, f := range s.q {
		f.Release()
		s.q[i] = nil
	}
	s.q, s.qoff = nil, 0
}

// writeFailed ends a session whose socket refused a write (reset, broken pipe).
func (s *Session) writeFailed(err error) {
	s.closeWith(os.NewSyscallError("write", err), 0, "")
	s.raise(workFinish)
}
