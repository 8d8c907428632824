package live

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/frame"
	"github.com/livepoll/livepoll/internal/tlsrec"
	"github.com/livepoll/livepoll/poller"
	"github.com/livepoll/livepoll/pool"
)

// Session states. A session is open until a close starts; closing while the closing
// handshake runs (Send fails, IsClosed is true); closed once its socket is closed.
const (
	stateOpen int32 = iota
	stateClosing
	stateClosed
)

// statusGoingAway is sent on shutdown (by default) and idle timeout; statusServiceRestart
// on shutdown when Options.ShutdownCode asks for it.
const (
	statusGoingAway      = ws.StatusGoingAway
	statusServiceRestart = ws.StatusCode(1012)
)

// Kinds of work raised on a session's Signal; the session's Run handles them in order.
const (
	workRead   = 1 << iota // the socket may have bytes (or EOF) to read
	workDrain              // with workRead: read until EAGAIN or EOF (the peer hung up, or reading had stopped)
	workFlush              // the socket became writable while the poller could not take wmu: write the queue
	workClose              // a close started: unsubscribe, call OnClose
	workFinish             // the closing handshake is over or timed out: close the socket
)

// Session is one connected WebSocket client. All its methods are safe for concurrent use.
//
// Fields are ordered for packing: a Session is allocated per connection and its size class
// is a large part of what an idle connection costs.
type Session struct {
	id    string
	value any
	srv   *Server

	conn  net.Conn    // owns the descriptor if not nil (else fd is the session's own); closed by finish
	blk   *blockingIO // the portable path's state; nil for a polled socket
	token poller.Token
	// lastRead is when the socket last gave bytes (unix nanoseconds); pingedAt when the
	// keepalive sweeper last pinged (owned by the sweeper).
	lastRead atomic.Int64
	pingedAt int64
	fd       int32         // -1 on the portable path
	flags    atomic.Uint32 // flagReady, flagHeavy
	state    atomic.Int32
	sig      pool.Signal

	// Owned by the session's Run (one worker at a time).
	turnLeft   int16 // frames the current turn may still handle
	eof        bool  // the socket reported EOF or an error
	notified   bool  // OnClose was called
	registered bool  // token is a poller registration (set before the session is visible)

	// Guarded by wmu (below); placed here to fill what would be padding.
	fdOpen    bool
	shutWr    bool // a close frame is queued; shut the write side once q drains
	outPaused bool // reading stopped until the queue drains (outgoing high-water mark)

	rd      frame.Reader
	pending *[]byte  // input read but not yet parsed (net/http's buffered bytes, or the rest of a paused turn)
	lim     *limiter // inbound rate limits; made at first use when Options set any

	// wmu guards the descriptor (no syscall after finish closed it, so a number reused by a
	// new connection is never touched) and the outgoing queue.
	wmu       sync.Mutex
	throttled bool           // listed in Server.throttle; guarded by its mu
	inWheel   bool           // in the keepalive wheel at wheelSlot, wheelPos; guarded by the wheel's mu
	wheelSlot uint8          // (the wheel's)
	zbits     uint8          // permessage-deflate negotiated: the window bits its messages fit (8..15); 0: not. Set before the session is visible, then read-only
	qoff      int32          // q[0] is written from this offset
	wheelPos  int32          // (the wheel's)
	qbytes    int32          // what the queued frames hold (frameCost each), counted against QueueBytes
	q         []*pool.Shared // frames not fully written (sealed records on a TLS session)
	ending    *closeInfo     // why the session closed and the context's Done; made on demand
	// tls is the record layer of a session served by ServeTLS (nil for plain ws://): its
	// read side belongs to Run, its write side to wmu's holder.
	tls *tlsrec.Conn

	// smu guards subscriptions. closeWith never takes it, so a close can start on any send
	// path (a Publish that finds the queue full, a failed write) whatever the sender holds;
	// the close's own unsubscribing runs later, in the session's Run.
	smu    sync.Mutex
	topics []*topic

	base context.Context // the upgrade request's context: values only
}

// ID returns the session's identifier (from Options.IDGenerator).
func (s *Session) ID() string { return s.id }

// Value returns what Options.OnAuth returned for this session.
func (s *Session) Value() any { return s.value }

// Send queues msg for this client without blocking and returns nil, or ErrSessionClosed
// once the session is closing. If the session already has Options.QueueSize messages or
// Options.QueueBytes bytes waiting for its socket, the session is closed and Send returns
// ErrQueueFull. A message
// whose Data is not valid JSON is dropped (as mizu's json.Marshal does) and counted.
func (s *Session) Send(msg Message) error {
	if s.state.Load() != stateOpen {
		return ErrSessionClosed
	}
	f, err := encodeMessageFrame(msg.Topic, msg.Data)
	if err != nil {
		s.srv.stats.dropped.Add(1)
		return nil
	}
	err = s.deliverMessage(f)
	f.Release()
	if err == nil {
		s.srv.stats.messagesOut.Add(1)
	}
	return err
}

// Close closes the session: messages already queued are sent, then a close frame (1000);
// OnClose follows with a nil error. Calling it again does nothing. It does not block.
func (s *Session) Close() error {
	s.closeWith(nil, ws.StatusNormalClosure, "")
	return nil
}

// CloseError returns why the session closed (what OnClose receives), or nil.
func (s *Session) CloseError() error {
	if s.state.Load() == stateOpen {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.ending == nil {
		return nil
	}
	return s.ending.err
}

// closeInfo is what a session needs only once it is closing, or once OnMessage asked for
// its context's Done: kept behind one pointer so that an open session does not carry it.
type closeInfo struct {
	err  error         // set once, when the close starts
	done chan struct{} // the context's Done, made on demand, closed when the close starts
}

// endingLocked returns the session's closeInfo, making it if needed (wmu held).
func (s *Session) endingLocked() *closeInfo {
	if s.ending == nil {
		s.ending = new(closeInfo)
	}
	return s.ending
}

// IsClosed reports whether the session is closing or closed.
func (s *Session) IsClosed() bool { return s.state.Load() != stateOpen }

// raise records work for the session and schedules it on the worker pool if idle.
func (s *Session) raise(work uint32) {
	if s.sig.Raise(work) {
		if s.flags.Load()&flagHeavy != 0 {
			s.srv.eng.pool.SubmitBehind((*sessionTask)(s))
		} else {
			s.srv.eng.pool.Submit((*sessionTask)(s))
		}
	}
}

// Session.flags.
const (
	// flagReady: registered with the poller, events may be handled.
	flagReady = 1 << iota
	// flagHeavy: the session's last reading turn was heavy (it used up the turn, or read
	// heavyTurn bytes or more): when it becomes ready again it queues behind the light
	// sessions, in the requeued tasks' share, instead of ahead of them (pool.SubmitBehind).
	// The next light turn clears it.
	flagHeavy
)

// setHeavy records whether the turn that just ended was heavy.
func (s *Session) setHeavy(heavy bool) {
	if was := s.flags.Load()&flagHeavy != 0; was == heavy {
		return
	}
	if heavy {
		s.flags.Or(flagHeavy)
	} else {
		s.flags.And(^uint32(flagHeavy))
	}
	if hook := testHookHeavy.Load(); hook != nil {
		(*hook)(s, heavy)
	}
}

// testHookHeavy, if set (tests only), sees every change of a session's flagHeavy.
var testHookHeavy atomic.Pointer[func(s *Session, heavy bool)]

// subscribe adds a topic; a no-op once the session is closing.
func (s *Session) subscribe(name string) {
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.state.Load() != stateOpen {
		return
	}
	if t, added := s.srv.topics.subscribe(s, name); added {
		s.topics = append(s.topics, t)
	}
}

func (s *Session) unsubscribe(name string) {
	s.smu.Lock()
	defer s.smu.Unlock()
	for i, t := range s.topics {
		if t.name == name {
			s.srv.topics.unsubscribe(s, t)
			last := len(s.topics) - 1
			s.topics[i] = s.topics[last]
			s.topics[last] = nil
			s.topics = s.topics[:last]
			return
		}
	}
}

func (s *Session) unsubscribeAll() {
	s.smu.Lock()
	topics := s.topics
	s.topics = nil
	s.smu.Unlock()
	for _, t := range topics {
		s.srv.topics.unsubscribe(s, t)
	}
}

// sessionContext is the ctx given to OnMessage: the upgrade request's values, no deadline,
// cancelled when the session starts closing. It is the Session itself seen through
// another type, so it costs nothing until Done is first called.
type sessionContext Session

func (c *sessionContext) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *sessionContext) Done() <-chan struct{} {
	s := (*Session)(c)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	e := s.endingLocked()
	if e.done == nil {
		e.done = make(chan struct{})
		if s.state.Load() != stateOpen {
			close(e.done)
		}
	}
	return e.done
}

func (c *sessionContext) Err() error {
	if c.state.Load() != stateOpen {
		return context.Canceled
	}
	return nil
}

func (c *sessionContext) Value(key any) any { return c.base.Value(key) }

func (c *sessionContext) String() string { return "live.Session(" + c.id + ").Context" }
