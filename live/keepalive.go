package live

import (
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Keepalive without a timer per session: a timing wheel of one-second slots. Each session
// sits in the slot of the second at which it must next be looked at; activity does not
// move it (reading only stores a coarse timestamp), so the per-read cost is one atomic
// store. When a slot comes due, each session in it is checked once: still active → put
// back at lastRead+PingInterval; silent for PingInterval → pinged and put back at
// lastRead+IdleTimeout; silent for IdleTimeout and a ping unanswered for at least
// pingAnswerTime → closed with ErrTimeout (without pings, silence alone). The sweeper thus
// touches a session about once per PingInterval, never all sessions at each tick.

const wheelSlots = 128 // seconds of horizon; later deadlines are re-checked on the way

type wheel struct {
	mu    sync.Mutex
	slots [wheelSlots][]*Session
	now   int64 // unix second of the slot being swept last
}

// schedule puts s in the slot of second at (clamped to the wheel's horizon). A session
// that has finished is not scheduled (finish removes it after marking it closed, so the
// two cannot cross).
func (w *wheel) schedule(s *Session, at int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.state.Load() == stateClosed || s.inWheel {
		return
	}
	if w.now == 0 {
		w.now = time.Now().Unix()
	}
	if at <= w.now {
		at = w.now + 1
	}
	if at >= w.now+wheelSlots {
		at = w.now + wheelSlots - 1
	}
	i := at % wheelSlots
	s.inWheel, s.wheelSlot, s.wheelPos = true, uint8(i), int32(len(w.slots[i]))
	w.slots[i] = append(w.slots[i], s)
}

// len reports how many sessions the wheel holds.
func (w *wheel) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, slot := range w.slots {
		n += len(slot)
	}
	return n
}

// remove takes a finished session out of the wheel at once, so that nothing keeps its
// memory until its slot comes round.
func (w *wheel) remove(s *Session) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !s.inWheel {
		return
	}
	s.inWheel = false
	slot := w.slots[s.wheelSlot]
	last := len(slot) - 1
	if i := int(s.wheelPos); i != last {
		slot[i] = slot[last]
		slot[i].wheelPos = int32(i)
	}
	slot[last] = nil
	w.slots[s.wheelSlot] = slot[:last]
}

// due moves the wheel to second now and appends the sessions of every slot passed to dst.
func (w *wheel) due(now int64, dst []*Session) []*Session {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.now == 0 {
		w.now = now
		return dst
	}
	for w.now < now {
		w.now++
		i := w.now % wheelSlots
		for _, s := range w.slots[i] {
			s.inWheel = false
		}
		dst = append(dst, w.slots[i]...)
		clear(w.slots[i])
		if cap(w.slots[i]) > 1024 && len(w.slots[i]) < cap(w.slots[i])/4 {
			w.slots[i] = nil
		} else {
			w.slots[i] = w.slots[i][:0]
		}
	}
	return dst
}

// pingAnswerTime is the least time a pinged session gets to answer before it is closed
// for silence.
const pingAnswerTime = time.Second

// keepaliveStep is what the sweeper does with a due session.
type keepaliveStep uint8

const (
	keepWait  keepaliveStep = iota // not silent long enough: look again later
	keepPing                       // silent: ping it (or wait for the answer to a ping out)
	keepClose                      // silent past IdleTimeout and a ping went unanswered
)

// keepaliveStepFor decides from how long a session has been silent, whether it was pinged
// since it last spoke and how long ago. A session is closed for silence only once it has
// had a ping and pingAnswerTime to answer it: the wheel's one-second slots may bring a
// session round first when it is already past IdleTimeout (PingInterval close to
// IdleTimeout), and closing it then would drop a live client that was never asked.
func keepaliveStepFor(ping, idle, silent time.Duration, pinged bool, sincePing time.Duration) keepaliveStep {
	switch {
	case idle > 0 && silent >= idle && (ping <= 0 || pinged && sincePing >= pingAnswerTime):
		return keepClose
	case ping > 0 && (silent >= ping || idle > 0 && silent >= idle):
		return keepPing
	}
	return keepWait
}

// checkAlive is the sweeper's look at one due session.
func (srv *Server) checkAlive(s *Session, now time.Time) {
	if s.state.Load() != stateOpen {
		return // dropped from the wheel
	}
	ping, idle := srv.opts.PingInterval, srv.opts.IdleTimeout
	lastRead := s.lastRead.Load()
	last := time.Unix(0, lastRead)
	pinged := s.pingedAt > lastRead
	switch keepaliveStepFor(ping, idle, now.Sub(last), pinged, now.Sub(time.Unix(0, s.pingedAt))) {
	case keepClose:
		s.closeWith(ErrTimeout, statusGoingAway, "idle timeout")
		return
	case keepPing:
		if !pinged {
			s.pingedAt = now.UnixNano()
			_ = s.sendFrame(ws.OpPing, nil)
		}
		if idle > 0 {
			at := last.Add(idle)
			if answer := time.Unix(0, s.pingedAt).Add(pingAnswerTime); answer.After(at) {
				at = answer
			}
			srv.keep.schedule(s, at.Unix()+1)
		} else {
			srv.keep.schedule(s, now.Add(ping).Unix())
		}
	default:
		next := idle
		if ping > 0 && (idle <= 0 || ping < idle) {
			next = ping
		}
		srv.keep.schedule(s, last.Add(next).Unix()+1)
	}
}
