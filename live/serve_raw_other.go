//go:build !linux

package live

import (
	"net"

	"github.com/livepoll/livepoll/poller"
)

// serveRaw accepts on the event loop on Linux only; elsewhere Serve accepts net.Conns.
func (srv *Server) serveRaw(*net.TCPListener) (handled bool, err error) { return false, nil }

// takeRaw reports false: only Linux reads handshakes on the event loop.
func takeRaw(net.Conn) (fd int, tok poller.Token, ok bool) { return -1, 0, false }
