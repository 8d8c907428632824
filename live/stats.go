package live

import (
	"errors"
	"io"
	"sync/atomic"
)

// Stats is a snapshot of a server's counters, from Server.Stats.
type Stats struct {
	Sessions      int // open sessions, including those finishing their closing handshake
	Topics        int // topics with at least one subscriber
	Subscriptions int // (session, topic) pairs

	MessagesIn  uint64 // data messages received from clients
	MessagesOut uint64 // messages handed to sessions (a Publish to n subscribers counts n)
	BytesIn     uint64 // bytes read from client sockets
	BytesOut    uint64 // bytes written to client sockets

	Skipped        uint64 // client messages that were not a {"topic","data"} envelope
	PublishDropped uint64 // Publish and Send calls dropped because data was not valid JSON
	Rejected       uint64 // upgrades refused with 503 (MaxSessions, shutting down)
	AcceptErrors   uint64 // Serve's accepts that failed for want of descriptors or memory
	// TLSHandshakeErrors counts ServeTLS connections dropped before their TLS handshake
	// finished: a bad or refused ClientHello, an alert, or the client too slow (10 s).
	// A TCP connect that closes without a ClientHello (a health check, a port scan)
	// counts too.
	TLSHandshakeErrors uint64

	UpgradesThrottled uint64 // upgrades refused with 503 by MaxUpgradeRate
	RateLimited       uint64 // times a client went over MessageRate or ByteRate (paused or closed)
	OutputPauses      uint64 // times a session stopped being read because its outgoing queue passed half its bounds

	Closed ClosedStats // sessions closed, by reason

	Broker BrokerStats // traffic to and from other nodes (zero without Options.Broker)
}

// ClosedStats counts closed sessions by the reason given to OnClose.
type ClosedStats struct {
	Normal      uint64 // nil: the client's close frame or Session.Close
	EOF         uint64 // the client closed the TCP connection without a close frame
	Protocol    uint64 // ErrProtocol (1002)
	InvalidUTF8 uint64 // ErrInvalidUTF8 (1007)
	TooLarge    uint64 // ErrMessageTooLarge (1009)
	QueueFull   uint64 // ErrQueueFull (1008)
	Timeout     uint64 // ErrTimeout (1001)
	Shutdown    uint64 // ErrServerClosed (1001)
	RateLimited uint64 // ErrRateLimited (1008)
	Panic       uint64 // ErrHandlerPanic (1011)
	Error       uint64 // socket errors (reset, broken pipe) and anything else
}

type counters struct {
	bytesIn, bytesOut       atomic.Uint64
	messagesIn, messagesOut atomic.Uint64
	skipped, dropped        atomic.Uint64
	rejected, acceptErrors  atomic.Uint64
	upgradesThrottled       atomic.Uint64
	tlsHandshakeErrors      atomic.Uint64
	rateLimited             atomic.Uint64
	outputPauses            atomic.Uint64

	closed [closedKinds]atomic.Uint64
}

const (
	closedNormal = iota
	closedEOF
	closedProtocol
	closedUTF8
	closedTooLarge
	closedQueueFull
	closedTimeout
	closedShutdown
	closedRateLimited
	closedPanic
	closedError
	closedKinds
)

// countClose files a session's close reason.
func (c *counters) countClose(err error) {
	kind := closedError
	switch {
	case err == nil:
		kind = closedNormal
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		kind = closedEOF
	case errors.Is(err, ErrProtocol):
		kind = closedProtocol
	case errors.Is(err, ErrInvalidUTF8):
		kind = closedUTF8
	case errors.Is(err, ErrMessageTooLarge):
		kind = closedTooLarge
	case errors.Is(err, ErrQueueFull):
		kind = closedQueueFull
	case errors.Is(err, ErrTimeout):
		kind = closedTimeout
	case errors.Is(err, ErrServerClosed):
		kind = closedShutdown
	case errors.Is(err, ErrRateLimited):
		kind = closedRateLimited
	case errors.Is(err, ErrHandlerPanic):
		kind = closedPanic
	}
	c.closed[kind].Add(1)
}

// Stats returns the server's counters. Topics and Subscriptions are counted by walking the
// topic registry; the rest are atomic counters. Safe for concurrent use.
func (srv *Server) Stats() Stats {
	srv.mu.Lock()
	sessions := len(srv.sessions)
	srv.mu.Unlock()
	topics, subs := srv.topics.counts()
	c := &srv.stats
	return Stats{
		Sessions:           sessions,
		Topics:             topics,
		Subscriptions:      subs,
		MessagesIn:         c.messagesIn.Load(),
		MessagesOut:        c.messagesOut.Load(),
		BytesIn:            c.bytesIn.Load(),
		BytesOut:           c.bytesOut.Load(),
		Skipped:            c.skipped.Load(),
		PublishDropped:     c.dropped.Load(),
		Rejected:           c.rejected.Load(),
		AcceptErrors:       c.acceptErrors.Load(),
		TLSHandshakeErrors: c.tlsHandshakeErrors.Load(),

		UpgradesThrottled: c.upgradesThrottled.Load(),
		RateLimited:       c.rateLimited.Load(),
		OutputPauses:      c.outputPauses.Load(),
		Closed: ClosedStats{
			Normal:      c.closed[closedNormal].Load(),
			EOF:         c.closed[closedEOF].Load(),
			Protocol:    c.closed[closedProtocol].Load(),
			InvalidUTF8: c.closed[closedUTF8].Load(),
			TooLarge:    c.closed[closedTooLarge].Load(),
			QueueFull:   c.closed[closedQueueFull].Load(),
			Timeout:     c.closed[closedTimeout].Load(),
			Shutdown:    c.closed[closedShutdown].Load(),
			RateLimited: c.closed[closedRateLimited].Load(),
			Panic:       c.closed[closedPanic].Load(),
			Error:       c.closed[closedError].Load(),
		},
		Broker: srv.broker.stats(),
	}
}
