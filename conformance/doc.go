// Package conformance walks the cases of the Autobahn testsuite's server sections 1-7, 9,
// 12 and 13 (framing, pings and pongs, reserved bits, opcodes, fragmentation, UTF-8, close
// handling, limits, permessage-deflate) against livepoll's echo engine (internal/rawecho,
// the engine of cmd/echo), with a hand-written client on a raw net.Conn that masks every
// frame itself and compresses with the standard library's flate.
//
// Each case states the frames it sends and the outcome it expects: the messages echoed,
// the pongs answered, the close code, or the connection failed before the rest was sent
// (fail-fast). Delays between frames and octets are scaled down from Autobahn's (10 ms
// between frames, 1 ms between octets), and so are section 9's sizes and the message counts
// of sections 12 and 13, so the suite runs in about a minute with -race; docs/conformance.md
// lists every case and its verdict.
//
//	go test -race ./conformance
//	go test ./conformance -run TestWriteReport -update   # regenerate docs/conformance.md
//
// The package holds only tests.
package conformance
