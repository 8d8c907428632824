package live

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"runtime/debug"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/frame"
	"github.com/livepoll/livepoll/poller"
	"github.com/livepoll/livepoll/pool"
)

// The read path and the session's ordered work. The poller's goroutine only turns
// readiness into work bits; everything that reads the socket, parses frames, calls
// OnMessage or OnClose, or closes the socket runs in sessionTask.Run, one worker at a time
// per session.

const (
	readBufSize = 32 << 10
	// readsPerRun bounds how much one run reads before letting other sessions have the
	// worker; the session is rescheduled if the socket still has data.
	readsPerRun = 4
)

// pollHandler receives the poller's events for a session.
type pollHandler Session

// Ready runs on the poller's goroutine and must not block: flushing is a non-blocking
// writev, and the rest is handed to the worker pool.
func (h *pollHandler) Ready(ev poller.Event) {
	s := (*Session)(h)
	if !s.ready.Load() {
		return // registration is finishing; it raises workRead itself
	}
	if ev&poller.Writable != 0 {
		s.flush()
	}
	switch {
	case ev&poller.Hangup != 0:
		s.raise(workRead | workDrain)
	case ev&poller.Readable != 0:
		s.raise(workRead)
	}
}

// sessionTask is the session as a pool.Task.
type sessionTask Session

func (t *sessionTask) Run() {
	s := (*Session)(t)
	for {
		work := s.sig.Take()
		if work&workRead != 0 {
			s.readReady(work&workDrain != 0)
		}
		if work&workClose != 0 {
			s.closeStarted()
		}
		if work&workFinish != 0 || (s.eof && s.state.Load() == stateClosing) {
			s.finish()
		}
		if s.sig.Done() {
			return
		}
	}
}

// readReady reads what the socket has and feeds it to the frame reader. A read shorter
// than the buffer took everything the socket held; bytes arriving later raise a new
// edge, so unless drain is set (the peer hung up: its EOF must be seen; or earlier events
// were ignored) it stops there instead of paying for a read that returns EAGAIN.
func (s *Session) readReady(drain bool) {
	if s.state.Load() == stateClosed || s.eof {
		return
	}
	if s.pre != nil {
		p := *s.pre
		s.pre = nil
		s.received(p)
	}
	if s.blk != nil {
		s.readInbox()
		return
	}
	bp := pool.Get(readBufSize)
	defer pool.Put(bp)
	buf := *bp
	for range readsPerRun {
		n, err := s.read(buf)
		switch {
		case n > 0:
			s.received(buf[:n])
			if n < len(buf) && !drain {
				return
			}
		case err == errWouldBlock:
			return
		case err == nil:
			s.inputEnded(io.EOF)
			return
		default:
			s.inputEnded(os.NewSyscallError("read", err))
			return
		}
	}
	s.raise(workRead | workDrain) // more may be waiting: come back after others had a turn
}

// received handles bytes from the client: they keep the session alive and are parsed.
// While the session is closing they are dropped: it reads only to see the client's EOF.
func (s *Session) received(p []byte) {
	s.lastRead.Store(time.Now().UnixNano())
	s.srv.stats.bytesIn.Add(uint64(len(p)))
	if s.state.Load() == stateOpen {
		s.feed(p)
	}
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

// read does one non-blocking read under wmu, so the descriptor cannot be closed (and its
// number reused) during the call. It returns (0, nil) at EOF.
func (s *Session) read(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.fdOpen {
		return 0, errBadFD
	}
	for {
		n, err := sysRead(s.fd, p)
		if err == errInterrupted {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

func (s *Session) feed(p []byte) {
	err := s.rd.Feed(p, int64(s.srv.opts.ReadLimit), (*frameHandler)(s))
	if err == nil || err == errStopReading {
		return
	}
	var fe *frame.Error
	if !errors.As(err, &fe) {
		s.closeWith(err, ws.StatusInternalServerError, "")
		return
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
		return s.sendFrame(op, payload)
	}
	topic, data, err := decodeEnvelope(payload)
	if err != nil {
		s.srv.stats.skipped.Add(1)
		return nil // not an envelope: skipped, as in mizu
	}
	if s.srv.opts.OnMessage != nil {
		s.callOnMessage(topic, data)
	}
	if s.state.Load() != stateOpen {
		return errStopReading
	}
	return nil
}

func (h *frameHandler) Control(op ws.OpCode, payload []byte) error {
	s := (*Session)(h)
	switch op {
	case ws.OpPing:
		return s.sendFrame(ws.OpPong, payload)
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
	defer func() {
		if r := recover(); r != nil {
			log.Printf("live: OnMessage panicked for session %s: %v\n%s", s.id, r, debug.Stack())
			s.closeWith(fmt.Errorf("%w: %v", ErrHandlerPanic, r), ws.StatusInternalServerError, "")
		}
	}()
	s.srv.opts.OnMessage((*sessionContext)(s), s, topic, data)
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
			defer func() {
				if r := recover(); r != nil {
					log.Printf("live: OnClose panicked for session %s: %v\n%s", s.id, r, debug.Stack())
				}
			}()
			s.srv.opts.OnClose(s, s.CloseError())
		}()
	}
}

// closeSocket closes the session's descriptor: through its net.Conn when it kept one (the
// portable path, or a descriptor that could not be detached), directly otherwise.
func (s *Session) closeSocket() {
	if s.conn != nil {
		_ = s.conn.Close()
	} else if s.fd >= 0 {
		_ = sysClose(s.fd)
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
	s.pre = nil
	s.srv.forget(s)
}
