// Package wsfleet is a cheap WebSocket client fleet for load generators (cmd/loadgen and
// the bench programs): connections are dialed with gobwas/ws, then detached from the Go
// runtime (the socket is dup'ed and the net.Conn closed) and read by a few epoll loops,
// so an idle client connection costs one descriptor and a small struct, and reading
// costs no goroutine wake-up. Linux only; on other systems only the frame helpers
// (AppendClientFrame, ParseFrames, CloseError) and Paced build.
package wsfleet
