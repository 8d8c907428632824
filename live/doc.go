// Package live is WebSocket topic pub/sub with the API and behaviour of the live package of
// github.com/go-mizu/mizu, served from an event loop.
//
// A program written for mizu's live moves over by changing its import path. Clients send
// and receive JSON envelopes {"topic": ..., "data": ...}; the server authenticates them
// (Options.OnAuth), receives their messages (Options.OnMessage), subscribes sessions to
// topics and publishes to every subscriber of a topic.
//
// # The event loop
//
// After the upgrade, no goroutine is kept per connection. A poller (epoll on Linux,
// kqueue on macOS and the BSDs) watches every socket; when one is readable, a worker from a
// pool reads what is there, parses complete frames and calls OnMessage. A session's work
// runs in order, one piece at a time, so OnMessage is never concurrent with itself for one
// session. Publish encodes a message once, writes the same bytes to every subscriber's
// socket that takes them, and queues them for the others until the poller reports their
// socket writable. An idle connection costs its file descriptor and a few hundred bytes.
//
// # Differences from mizu
//
// They are deliberate and listed with reasons in docs/migrating-from-mizu.md: clients that
// break RFC 6455 get the right close code (1002, 1007, 1009) and fragmented messages are
// reassembled; the ctx given to OnMessage lives as long as the session; cross-origin
// browser requests are refused unless Origins or CheckOrigin allow them; the close frame of
// Session.Close reaches the client; a POST is not an upgrade.
//
// # Platforms and TLS
//
// The event loop needs epoll (Linux) or kqueue (macOS, BSD) and a connection that exposes
// its descriptor (*net.TCPConn, *net.UnixConn). Other connections — a *tls.Conn when
// Handler is mounted on an https server — and every connection on other platforms take a
// portable path: a reader and a writer goroutine per connection feeding the same session
// engine, at about mizu's cost. Server.ServeTLS serves wss:// from the event loop itself:
// crypto/tls does the handshake, then livepoll's own record layer (keys taken over from
// crypto/tls) seals and opens records, and an idle wss session holds no goroutine and no
// buffer (docs/tls.md).
//
// # Operations
//
// Server.Shutdown and Server.Close end every session with close code 1001; keepalive
// pings (Options.PingInterval) and an idle timeout (Options.IdleTimeout) find vanished
// peers without a timer per session; Options.MaxSessions refuses upgrades with 503;
// Server.Stats reports counters; Server.Serve accepts without net/http and survives
// running out of descriptors. docs/tuning.md covers 100k+ connections.
package live
