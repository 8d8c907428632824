package pubsub

import (
	"sync/atomic"

	stats "github.com/livepoll/livepoll/internal/srvstats"
)

// Session counts a connection in stats.Counters.Sessions from its first
// handled message until it closes, whichever comes first: a connection that
// closes before it has been counted is never counted. The zero value is a
// new connection's.
type Session struct {
	state atomic.Int32
}

const (
	stateNew int32 = iota
	stateCounted
	stateClosed
)

// Handled is called after every handled message; the first one counts the
// session.
func (s *Session) Handled(c *stats.Counters) {
	if s.state.CompareAndSwap(stateNew, stateCounted) {
		c.Sessions.Add(1)
	}
}

// Closed is called once the connection has closed; it uncounts a counted
// session.
func (s *Session) Closed(c *stats.Counters) {
	if s.state.Swap(stateClosed) == stateCounted {
		c.Sessions.Add(-1)
	}
}
