// Package rawecho lets cmd/echo run live's session engine in echo mode: every text and
// binary message is sent back unchanged instead of being decoded as a {"topic","data"}
// envelope. It keeps that mode out of live's public API: package live sets New when it
// is initialised.
package rawecho

import "net/http"

// Server is what New returns: an upgrade handler and a way to close every session.
type Server interface {
	Handler() http.Handler
	Close() error
}

// New returns an echo server accepting messages up to readLimit bytes. It is set by package
// live; import live (for its side effect) before calling it.
var New func(readLimit int) Server
