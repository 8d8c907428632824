package live

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/frame"
	"github.com/livepoll/livepoll/poller"
	"github.com/livepoll/livepoll/pool"
)

// The read path and the session's ordered work. The poller's goroutine only turns
// readiness into work bits (and writes a waiting queue when the socket's lock is free);
// everything that reads the socket, parses frames, calls OnMessage or OnClose, or closes
// the socket runs in sessionTask.Run, one worker at a time per session.
//
// A run reads in bounded turns: at most turnReads reads and turnFrames frames. A session
// with more input then goes to the back of the pool's queue (its unparsed bytes kept in
// pending), so a client that keeps its socket full gets a turn like everyone else and never
// holds a worker; and a session whose last turn was heavy (used up, or heavyTurn bytes)
// goes to the back when the poller finds it ready again, until a light turn (flagHeavy).
// Reading also stops, without a turn at the back, while the session's
// outgoing queue is above its high-water mark (the flush that drains it resumes reading) or
// while the client is over its rate limit (the sweeper resumes it).

const (
	readBufSize = 32 << 10
	// turnReads and turnFrames bound one turn: 128 KiB of input and 64 frames.
	turnReads  = 4
	turnFrames = 64
	// heavyTurn is the input one turn may read and still count as light (flagHeavy).
	heavyTurn = 16 << 10
)

// pollHandler receives the poller's events for a session.
type pollHandler Session

// Ready runs on the poller's goroutine and must not block: it writes a waiting queue only
// if the session's write lock is free (a publisher may hold it across a write), and hands
// everything else to the worker pool.
func (h *pollHandler) Ready(ev poller.Event) {
	s := (*Session)(h)
	if s.flags.Load()&flagReady == 0 {
		return // registration is finishing; it raises workRead itself
	}
	var work uint32
	if ev&poller.Writable != 0 && !s.tryFlush() {
		work |= workFlush
	}
	switch {
	case ev&poller.Hangup != 0:
		work |= workRead | workDrain
	case ev&poller.Readable != 0:
		work |= workRead
	}
	if work != 0 {
		s.raise(work)
	}
}

// sessionTask is the session as a pool.Task.
type sessionTask Session

func (t *sessionTask) Run() {
	s := (*Session)(t)
	for {
		work := s.sig.Take()
		if work&workFlush != 0 {
			s.flush()
		}
		yield := false
		if work&workRead != 0 {
			yield = s.readReady(work&workDrain != 0)
		}
		if work&workClose != 0 {
			s.closeStarted()
		}
		if work&workFinish != 0 || (s.eof && s.state.Load() == stateClosing) {
			s.finish()
		}
		if yield && s.state.Load() != stateClosed {
			// More input is waiting: keep the session scheduled with the work recorded and
			// requeue it behind the sessions that became ready meanwhile.
			s.sig.Raise(workRead | workDrain)
			if s.srv.eng.pool.Requeue(t) {
				return
			}
			continue // the pool is closed: go on here
		}
		if s.sig.Done() {
			return
		}
	}
}

// readReady runs one turn of reading: what is pending first, then reads into a pooled
// buffer, each parsed at once. It reports whether the turn ended with input left over, so
// the session must come back after others had their turn. A read shorter than the buffer
// took everything the socket held; bytes arriving later raise a new edge, so unless drain
// is set (the peer hung up: its EOF must be seen; or the session stopped reading earlier)
// the turn stops there instead of paying for a read that returns EAGAIN.
func (s *Session) readReady(drain bool) (more bool) {
	if s.state.Load() == stateClosed || s.eof {
		return false
	}
	s.turnLeft = turnFrames
	if s.readPaused() {
		return false
	}
	if s.pending != nil {
		if s.state.Load() != stateOpen {
			s.dropPending()
		} else if stopped := s.feedPending(); stopped {
			return s.afterPause()
		}
	}
	if s.blk != nil {
		if stopped := s.readInbox(); stopped {
			return s.afterPause()
		}
		return false
	}
	bp := pool.Get(readBufSize)
	defer pool.Put(bp)
	buf := *bp
	got := 0
	defer func() { s.setHeavy(more || got >= heavyTurn) }()
	for range turnReads {
		n, err := s.read(buf)
		switch {
		case n > 0:
			got += n
			if stopped := s.received(buf[:n]); stopped {
				return s.afterPause()
			}
			if n < len(buf) && !drain {
				return false
			}
		case err == errWouldBlock:
			return false
		case err == nil:
			s.inputEnded(io.EOF)
			return false
		default:
			s.inputEnded(os.NewSyscallError("read", err))
			return false
		}
		if s.readPaused() {
			return false
		}
	}
	return true // the socket may hold more
}

// readPaused reports whether reading must wait: the client is over its rate limit (the
// sweeper raises workRead when it may go on; under the close policy it is closed instead
// and reading goes on to see its EOF), or the outgoing queue is above the high-water mark
// (the flush that drains it raises workRead). Only a session that is still open waits.
func (s *Session) readPaused() bool {
	if s.state.Load() != stateOpen {
		return false // reading on sees the client's close or EOF; input is dropped
	}
	if wait := s.limits().wait(&s.srv.opts); wait > 0 {
		return s.srv.overRate(s, wait)
	}
	return s.pauseForOutput()
}

// afterPause decides what a turn that stopped in the middle of its input does next: wait
// (rate limit, outgoing queue) or go to the back of the line (the turn is used up).
func (s *Session) afterPause() (more bool) {
	if s.state.Load() != stateOpen {
		s.dropPending() // closing: the rest is never parsed; read on only to see EOF
		return !s.eof
	}
	return !s.readPaused()
}

// dropPending releases unparsed input.
func (s *Session) dropPending() {
	if s.pending != nil {
		pool.Put(s.pending)
		s.pending = nil
	}
}

// feedPending parses input left from an earlier turn; it reports whether parsing stopped
// again before the end.
func (s *Session) feedPending() (stopped bool) {
	p := s.pending
	s.pending = nil
	stopped = s.feed(*p)
	pool.Put(p)
	return stopped
}

// received handles bytes from the client: they keep the session alive, count against its
// rate limit and are parsed. While the session is closing they are dropped: it reads only
// to see the client's EOF. It reports whether parsing stopped before the end of p (what is
// left is in pending).
func (s *Session) received(p []byte) (stopped bool) {
	now := time.Now().UnixNano()
	s.srv.stats.bytesIn.Add(uint64(len(p)))
	if s.tls != nil {
		// Records: opened, then parsed the same way; how long the session was silent
		// decides whether its keys are compacted afterwards.
		return s.receivedTLS(p, time.Duration(now-s.lastRead.Swap(now)))
	}
	s.lastRead.Store(now)
	if s.state.Load() != stateOpen {
		return false
	}
	s.limits().takeBytes(&s.srv.opts, len(p))
	return s.feed(p)
}

// feed parses p. When a frame handler pauses (the turn is used up, the client went over
// its message rate, the outgoing queue passed its high-water mark), the unparsed rest of p
// is copied to pending and feed reports true.
func (s *Session) feed(p []byte) (stopped bool) {
	n, err := s.rd.FeedSome(p, int64(s.srv.opts.ReadLimit), (*frameHandler)(s))
	switch {
	case err == nil || err == errStopReading:
		return false
	case err == frame.ErrPause:
		if rest := p[n:]; len(rest) > 0 {
			b := pool.Get(len(rest))
			copy(*b, rest)
			s.pending = b
			return true
		}
		return false
	}
	var fe *frame.Error
	if !errors.As(err, &fe) {
		s.closeWith(err, ws.StatusInternalServerError, "")
		return false
	}
	var kind error
	switch fe.Code {
	case ws.StatusInvalidFramePayloadData:
		kind = ErrInvalidUTF8
	case ws.StatusMessageTooBig:
		kind = ErrMessageTooLarge
	default:
		kind = ErrProtocol
	}
	s.closeWith(fmt.Errorf("%w: %w", kind, fe), fe.Code, fe.Reason)
	return false
}

// inputEnded handles the end of the client's stream: EOF (io.EOF, reported as
// io.ErrUnexpectedEOF in the middle of a frame) or a read error.
func (s *Session) inputEnded(err error) {
	s.eof = true
	if errors.Is(err, io.EOF) {
		err = io.EOF
		if s.rd.Partial() {
			err = io.ErrUnexpectedEOF
		}
	}
	s.closeWith(err, 0, "")
}

// read does one non-blocking read. It needs no lock: only the session's Run closes the
// descriptor (finish), and Run is where reads happen. It returns (0, nil) at EOF.
func (s *Session) read(p []byte) (int, error) {
	if !s.fdOpen {
		return 0, errBadFD
	}
	if s.tls != nil && s.tlsReadEnded() {
		s.sendTLSPending() // the client's close_notify came behind input parsed since
		return 0, nil      // EOF now
	}
	for {
		n, err := sysRead(int(s.fd), p)
		if err == errInterrupted {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// errStopReading tells the frame reader to stop: the session started closing.
var errStopReading = errors.New("live: stop reading")

// frameHandler receives parsed frames for a session.
type frameHandler Session

func (h *frameHandler) Message(op ws.OpCode, payload []byte) error {
	s := (*Session)(h)
	if s.state.Load() != stateOpen {
		return errStopReading
	}
	s.srv.stats.messagesIn.Add(1)
	if s.srv.echo {
		if err := s.sendEcho(op, payload); err != nil {
			return err
		}
		return s.frameDone()
	}
	topic, data, err := decodeEnvelope(payload)
	if err != nil {
		s.srv.stats.skipped.Add(1)
		return s.frameDone() // not an envelope: skipped, as in mizu
	}
	if s.srv.opts.OnMessage != nil {
		s.callOnMessage(topic, data)
	}
	if s.state.Load() != stateOpen {
		return errStopReading
	}
	return s.frameDone()
}

func (h *frameHandler) Control(op ws.OpCode, payload []byte) error {
	s := (*Session)(h)
	switch op {
	case ws.OpPing:
		if err := s.sendFrame(ws.OpPong, payload); err != nil {
			return err
		}
	case ws.OpClose:
		// Answer with the client's code (an empty close frame for an empty one); the
		// close is clean, so OnClose gets nil as in mizu.
		code := ws.StatusNoStatusRcvd
		if len(payload) >= 2 {
			code = ws.StatusCode(uint16(payload[0])<<8 | uint16(payload[1]))
		}
		s.closeWith(nil, code, "")
		return errStopReading
	}
	return s.frameDone()
}

// frameDone counts a handled frame against the turn and the client's message rate, and
// pauses the reader when the turn is used up, the client is over its rate, or the answers
// it caused filled the outgoing queue past its high-water mark.
func (s *Session) frameDone() error {
	s.turnLeft--
	over := s.limits().takeMessage(&s.srv.opts)
	if s.turnLeft <= 0 || over || s.outputHigh() {
		return frame.ErrPause
	}
	return nil
}

// sendFrame sends one frame built from payload; it stops the reader once the session is
// closing.
func (s *Session) sendFrame(op ws.OpCode, payload []byte) error {
	f := newFrame(op, payload)
	err := s.deliver(f)
	f.Release()
	if err != nil {
		return errStopReading
	}
	return nil
}

// callOnMessage runs the user's handler; a panic closes this session (1011) instead of
// the process.
func (s *Session) callOnMessage(topic string, data []byte) {
	p := s.srv.eng.pool
	p.Block() // the user's code may block: the pool may grow while every worker is in it
	defer p.Unblock()
	defer func() {
		if r := recover(); r != nil {
			s.srv.opts.Logger.Error("live: OnMessage panicked", "session", s.id, "panic", r, "stack", string(debug.Stack()))
			s.closeWith(fmt.Errorf("%w: %v", ErrHandlerPanic, r), ws.StatusInternalServerError, "")
		}
	}()
	s.srv.opts.OnMessage((*sessionContext)(s), s, topic, data)
}
