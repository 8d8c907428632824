package frame

import (
	"slices"

	"github.com/gobwas/ws"
)

// AppendFrame appends a final, unmasked server frame with opcode op and the
// given payload to dst and returns the extended slice. It grows dst at most
// once. A control frame payload must be at most 125 bytes; that is not
// checked.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	n := HeaderSize(len(payload))
	dst = slices.Grow(dst, n+len(payload))
	start := len(dst)
	dst = dst[:start+n]
	PutHeader(dst[start:], op, len(payload))
	return append(dst, payload...)
}
