package live

import "errors"

// Errors returned by Session methods and passed to Options.OnClose. Compare with errors.Is:
// the error given to OnClose often wraps one of these with detail.
var (
	// ErrSessionClosed is returned by Session.Send once the session is closing or closed.
	ErrSessionClosed = errors.New("live: session closed")

	// ErrQueueFull is returned by Session.Send, and given to OnClose, when a session's send
	// queue already held Options.QueueSize messages or Options.QueueBytes bytes. The session is closed (close code 1008)
	// so that one slow client cannot hold memory or slow down the others.
	ErrQueueFull = errors.New("live: send queue full")

	// ErrProtocol is given to OnClose when the client broke RFC 6455 (an unmasked frame,
	// reserved bits or opcodes, a bad control frame, a bad close code, a stray
	// continuation). The server sent close code 1002.
	ErrProtocol = errors.New("live: protocol error")

	// ErrInvalidUTF8 is given to OnClose when a text message (or a close reason) was not
	// valid UTF-8. The server sent close code 1007.
	ErrInvalidUTF8 = errors.New("live: invalid UTF-8 in text message")

	// ErrMessageTooLarge is given to OnClose when a client message was longer than
	// Options.ReadLimit. The server sent close code 1009.
	ErrMessageTooLarge = errors.New("live: message larger than ReadLimit")

	// ErrTimeout is given to OnClose when the client sent nothing — not even a pong to the
	// server's pings — for Options.IdleTimeout. The server sent close code 1001.
	ErrTimeout = errors.New("live: idle timeout")

	// ErrServerClosed is given to OnClose for sessions ended by Server.Shutdown or
	// Server.Close, and returned by them once the server is closed. The server sent close
	// code 1001 (going away), or 1012 (service restart) under Options.ShutdownCode.
	ErrServerClosed = errors.New("live: server closed")

	// ErrRateLimited is given to OnClose when the client went over Options.MessageRate or
	// Options.ByteRate and Options.RateLimitClose is set. The server sent close code 1008.
	ErrRateLimited = errors.New("live: client over its rate limit")

	// ErrHandlerPanic is given to OnClose when OnMessage panicked for that session. The
	// panic is recovered, the session is closed with code 1011 and the server goes on.
	ErrHandlerPanic = errors.New("live: OnMessage panicked")
)
