package live

import (
	"os"
	"runtime/debug"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/frame"
	"github.com/livepoll/livepoll/pool"
)

// The close path. Every way a session ends — the client's close frame, EOF or a read
// error, a write error, ErrQueueFull, a protocol error, the idle timeout, the rate-limit
// close policy, Session.Close, Shutdown and Close — goes through these steps:
//
//  1. closeWith (any goroutine, once): record the reason, cancel the context, queue a
//     close frame behind what is already queued (a full queue is dropped first) and
//     start the closing-handshake timer; raise workClose.
//  2. closeStarted (the session's Run): leave every topic, count the reason, call OnClose.
//  3. the close frame drains: once it is out the write side is shut (SHUT_WR), so the
//     client reads the frame and then EOF, never a reset; reading goes on, dropping input,
//     until the client's EOF or the timer (closeTimeout).
//  4. finish (the session's Run, once): stop writes, release the queue, unparsed input,
//     the keepalive and throttle entries and the poller registration, close the
//     descriptor and forget the session. Nothing of the session is referenced by the
//     server after that.

// closeWith starts closing the session, once: it records the reason, queues a close frame
// with code (0: none, because the connection is broken; ws.StatusNoStatusRcvd: an empty
// close frame), cancels the context and lets the session's Run finish the job. It reports
// whether this call started the close.
func (s *Session) closeWith(reason error, code ws.StatusCode, text string) bool {
	s.wmu.Lock()
	if s.state.Load() != stateOpen {
		s.wmu.Unlock()
		return false
	}
	s.state.Store(stateClosing)
	if reason != nil || s.ending != nil {
		e := s.endingLocked()
		e.err = reason
		if e.done != nil {
			close(e.done) // cancels the session's context
		}
	}
	if code != 0 && s.fdOpen {
		if reason == ErrQueueFull {
			s.dropQueuedLocked()
		}
		cf := closeFrame(code, text)
		s.shutWr = true
		s.enqueueLocked(cf)
		cf.Release()
		s.shutdownIfDrainedLocked()
	}
	s.wmu.Unlock()

	if code != 0 {
		s.srv.watchClosing(s, time.Now().Add(closeTimeout))
	}
	s.raise(workClose)
	return true
}

func closeFrame(code ws.StatusCode, text string) *pool.Shared {
	if code == ws.StatusNoStatusRcvd {
		return newFrame(ws.OpClose, nil)
	}
	f := pool.NewShared(2 + 2 + len(text))
	f.B = frame.AppendClose(f.B[:0], code, text)
	return f
}

// newFrame returns a pooled frame carrying payload; the caller owns one reference.
func newFrame(op ws.OpCode, payload []byte) *pool.Shared {
	f := pool.NewShared(frame.HeaderSize(len(payload)) + len(payload))
	f.B = frame.AppendFrame(f.B[:0], op, payload)
	return f
}

// shutdownIfDrainedLocked shuts the write side once a queued close frame has gone out, so
// the client reads the close frame and then EOF, never a reset.
func (s *Session) shutdownIfDrainedLocked() {
	if s.shutWr && len(s.q) == 0 && s.fdOpen && s.blk == nil {
		if s.tls != nil && !s.closeNotifyOutLocked() {
			return // close_notify is queued behind; the flush that drains it comes back here
		}
		s.shutWr = false
		_ = sysShutdownWrite(int(s.fd))
	}
}

// closeStarted runs once per session after closeWith: the session leaves its topics and
// OnClose is called. The socket may still be finishing the closing handshake.
func (s *Session) closeStarted() {
	if s.notified {
		return
	}
	s.notified = true
	s.unsubscribeAll()
	s.srv.stats.countClose(s.CloseError())
	if s.srv.opts.OnClose != nil {
		func() {
			p := s.srv.eng.pool
			p.Block()
			defer p.Unblock()
			defer func() {
				if r := recover(); r != nil {
					s.srv.opts.Logger.Error("live: OnClose panicked", "session", s.id, "panic", r, "stack", string(debug.Stack()))
				}
			}()
			s.srv.opts.OnClose(s, s.CloseError())
		}()
	}
}

// sendCloseNow writes a close frame to a session that never became visible, without
// waiting: on the portable path with a short deadline, on a polled socket only what the
// socket takes at once.
func (s *Session) sendCloseNow(code ws.StatusCode, text string) {
	cf := closeFrame(code, text)
	defer cf.Release()
	switch {
	case s.fd >= 0:
		if s.tls != nil {
			if sf := s.sealLocked(cf); sf != nil {
				sf.B = s.tls.SealClose(sf.B)
				_, _ = writeAll(int(s.fd), sf.B)
				sf.Release()
			}
			return
		}
		_, _ = writeAll(int(s.fd), cf.B)
	case s.conn != nil:
		_ = s.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = s.conn.Write(cf.B)
	}
}

// closeSocket closes the session's descriptor: through its net.Conn when it kept one (the
// portable path, or a descriptor that could not be detached), directly otherwise.
func (s *Session) closeSocket() {
	if s.conn != nil {
		_ = s.conn.Close()
	} else if s.fd >= 0 {
		_ = sysClose(int(s.fd))
	}
}

// finish closes the socket, once: no write can start after fdOpen is cleared, the poller
// forgets the registration (waiting out an event being dispatched), and then the
// descriptor is closed.
func (s *Session) finish() {
	if s.state.Load() == stateClosed {
		return
	}
	if !s.notified {
		s.closeStarted()
	}
	s.wmu.Lock()
	s.state.Store(stateClosed)
	s.fdOpen = false
	s.outPaused = false
	s.releaseQueueLocked()
	s.wmu.Unlock()
	if s.registered {
		_ = s.srv.eng.poll.Remove(s.token)
	}
	s.closeSocket()
	if s.blk != nil {
		s.blk.stop()
	}
	s.rd.Release()
	s.dropPending()
	if s.tls != nil {
		s.tls.Release() // the read side is this Run's; no write can start after fdOpen fell
	}
	s.srv.keep.remove(s)
	s.srv.unthrottle(s)
	s.srv.forget(s)
}

// writeFailed ends a session whose socket refused a write (reset, broken pipe).
func (s *Session) writeFailed(err error) {
	s.closeWith(os.NewSyscallError("write", err), 0, "")
	s.raise(workFinish)
}
