// Package tlsrec serves TLS on an event loop for a few hundred bytes per idle connection.
//
// crypto/tls runs every handshake (a Runner bounds how many at once, and for how long)
// over an in-memory connection that the caller feeds from its socket. When the handshake
// is over, the traffic secrets that crypto/tls wrote to Config.KeyLogWriter become a
// Conn: two AEADs and their sequence numbers that seal and open records with no goroutine
// and no buffer held between records. The tls.Conn and all its buffers are dropped, as
// kernel TLS does with the keys. docs/tls.md has the design, the measurements and what
// is refused.
package tlsrec
