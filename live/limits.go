package live

import (
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Inbound rate limits and the upgrade cap. Each is a token bucket refilled when it is used
// (elapsed time × rate, up to the burst), so it needs no timer: a session's buckets are a
// 16-byte limiter it allocates at its first read when limits are set, touched only by its
// Run. A session over its limit stops being
// read (its client is held back by TCP) and waits in the server's throttle list, which the
// sweeper looks at every sweepInterval; under Options.RateLimitClose it is closed instead.

// limiter holds a session's message and byte buckets; a session gets one when it is first
// read and Options set a limit (others keep a nil pointer: idle memory is what this
// library is about). last is 0 until the first use, which starts both buckets full.
type limiter struct {
	last  int64 // unix nanoseconds of the last refill
	msgs  float32
	bytes float32
}

func (o *Options) rateLimited() bool { return o.MessageRate > 0 || o.ByteRate > 0 }

// refill adds what the time since the last use earned, up to each burst.
func (l *limiter) refill(o *Options, now int64) {
	if l.last == 0 {
		l.last = now
		l.msgs, l.bytes = float32(o.MessageBurst), float32(o.ByteBurst)
		return
	}
	dt := float64(now-l.last) / 1e9
	l.last = now
	if dt <= 0 {
		return
	}
	l.msgs = float32(min(float64(o.MessageBurst), float64(l.msgs)+dt*o.MessageRate))
	l.bytes = float32(min(float64(o.ByteBurst), float64(l.bytes)+dt*o.ByteRate))
}

// limits returns the session's limiter, made at first use, or nil without rate limits.
func (s *Session) limits() *limiter {
	if s.lim == nil && s.srv.opts.rateLimited() {
		s.lim = new(limiter)
	}
	return s.lim
}

// takeMessage takes one message (a data message or a control frame) and reports whether
// the client is now over its message rate.
func (l *limiter) takeMessage(o *Options) (over bool) {
	if l == nil || o.MessageRate <= 0 {
		return false
	}
	l.refill(o, time.Now().UnixNano())
	l.msgs--
	return l.msgs < 0
}

// takeBytes takes n bytes read from the socket.
func (l *limiter) takeBytes(o *Options, n int) {
	if l == nil || o.ByteRate <= 0 {
		return
	}
	l.refill(o, time.Now().UnixNano())
	l.bytes -= float32(n)
}

// wait returns how long the client must wait until both buckets are out of debt (0: it may
// be read now).
func (l *limiter) wait(o *Options) time.Duration {
	if l == nil {
		return 0
	}
	l.refill(o, time.Now().UnixNano())
	var sec float64
	if o.MessageRate > 0 && l.msgs < 0 {
		sec = float64(-l.msgs) / o.MessageRate
	}
	if o.ByteRate > 0 && l.bytes < 0 {
		sec = max(sec, float64(-l.bytes)/o.ByteRate)
	}
	return time.Duration(sec * float64(time.Second))
}

// throttleList holds the sessions whose reading waits for their rate limit.
type throttleList struct {
	mu       sync.Mutex
	sessions map[*Session]int64 // when each may be read again (unix nanoseconds)
}

// overRate handles a session whose client went over its rate limit: it is closed with
// ErrRateLimited under Options.RateLimitClose (and reading goes on, to see its EOF), or
// else listed to be read again after wait. It reports whether reading must stop.
func (srv *Server) overRate(s *Session, wait time.Duration) bool {
	if srv.opts.RateLimitClose {
		if s.closeWith(ErrRateLimited, statusPolicy, "rate limit exceeded") {
			srv.stats.rateLimited.Add(1)
		}
		return false
	}
	t := &srv.throttle
	t.mu.Lock()
	if !s.throttled {
		s.throttled = true
		if t.sessions == nil {
			t.sessions = make(map[*Session]int64)
		}
		t.sessions[s] = time.Now().Add(wait).UnixNano()
		srv.stats.rateLimited.Add(1)
	}
	t.mu.Unlock()
	return true
}

// unthrottle drops a finished session from the throttle list.
func (srv *Server) unthrottle(s *Session) {
	t := &srv.throttle
	t.mu.Lock()
	if s.throttled {
		s.throttled = false
		delete(t.sessions, s)
	}
	t.mu.Unlock()
}

// resumeThrottled is the sweeper's look at the throttle list: sessions whose wait is over
// are read again (their Run checks the buckets and lists them again if need be).
func (srv *Server) resumeThrottled(now time.Time, due []*Session) []*Session {
	t := &srv.throttle
	t.mu.Lock()
	for s, at := range t.sessions {
		if now.UnixNano() >= at {
			s.throttled = false
			delete(t.sessions, s)
			due = append(due, s)
		}
	}
	t.mu.Unlock()
	for _, s := range due {
		s.raise(workRead | workDrain)
	}
	return due
}

// upgradeLimiter caps new sessions per second (Options.MaxUpgradeRate).
type upgradeLimiter struct {
	mu     sync.Mutex
	last   time.Time
	tokens float64
}

// admitUpgrade takes a token for one upgrade, or answers 503 with Retry-After and reports
// false.
func (srv *Server) admitUpgrade(w http.ResponseWriter) bool {
	rate := srv.opts.MaxUpgradeRate
	if rate <= 0 {
		return true
	}
	u := &srv.upgrades
	burst := float64(srv.opts.UpgradeBurst)
	now := time.Now()
	u.mu.Lock()
	if u.last.IsZero() {
		u.tokens = burst
	} else {
		u.tokens = min(burst, u.tokens+now.Sub(u.last).Seconds()*rate)
	}
	u.last = now
	ok := u.tokens >= 1
	if ok {
		u.tokens--
	}
	u.mu.Unlock()
	if !ok {
		srv.stats.upgradesThrottled.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many new connections", http.StatusServiceUnavailable)
	}
	return ok
}

// statusPolicy is close code 1008, policy violation: a client over its rate limit, or one
// whose queue overflowed.
const statusPolicy = ws.StatusPolicyViolation
