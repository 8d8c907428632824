package wsfleet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/gobwas/ws"
)

// ErrProtocol reports a server frame this client does not accept.
var ErrProtocol = errors.New("wsfleet: protocol error")

// maxFrame is the largest server frame a Loop accepts. The tail buffer grows as bytes
// arrive, never on a declared length, so this only bounds how long a connection may keep
// one.
const maxFrame = 1 << 30

// AppendClientFrame appends a final, masked frame (as a client must send)
// with opcode op and payload p to dst.
func AppendClientFrame(dst []byte, op ws.OpCode, p []byte) []byte {
	dst = append(dst, 0x80|byte(op))
	switch n := len(p); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, 0x80|127), uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, p...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// Frame is one server frame. Fragments come one by one (the fleet's servers send whole
// messages).
type Frame struct {
	Fin bool
	// RSV1 marks the first frame of a compressed message (permessage-deflate, RFC 7692);
	// the fleet does not inflate: the handler gets the compressed bytes.
	RSV1    bool
	Op      ws.OpCode
	Payload []byte // a view into the loop's buffer, valid until the handler returns
}

// ParseFrames calls fn for every complete frame at the start of b and returns how many
// bytes it consumed; the rest is an incomplete frame, to be parsed again with the bytes
// that follow it. Server frames are unmasked; payloads passed to fn are views into b,
// valid until fn returns. A masked frame, or one declaring more than limit bytes, is an
// error wrapping ErrProtocol; an error from fn stops the parse and is returned as is.
func ParseFrames(b []byte, limit uint64, fn func(f Frame) error) (int, error) {
	used := 0
	for {
		rest := b[used:]
		if len(rest) < 2 {
			return used, nil
		}
		fin, rsv1 := rest[0]&0x80 != 0, rest[0]&0x40 != 0
		op := ws.OpCode(rest[0] & 0x0f)
		if rest[1]&0x80 != 0 {
			return used, fmt.Errorf("%w: masked server frame", ErrProtocol)
		}
		hdr, n := 2, uint64(rest[1]&0x7f)
		switch n {
		case 126:
			if len(rest) < 4 {
				return used, nil
			}
			hdr, n = 4, uint64(binary.BigEndian.Uint16(rest[2:]))
		case 127:
			if len(rest) < 10 {
				return used, nil
			}
			hdr, n = 10, binary.BigEndian.Uint64(rest[2:])
		}
		if n > limit {
			return used, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, n)
		}
		if uint64(len(rest)-hdr) < n {
			return used, nil
		}
		if err := fn(Frame{Fin: fin, RSV1: rsv1, Op: op, Payload: rest[hdr : hdr+int(n)]}); err != nil {
			return used, err
		}
		used += hdr + int(n)
	}
}

// CloseError is a close frame the server sent first.
type CloseError struct {
	Code   int // 0 when the frame had no status code
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("wsfleet: close frame from server, code %d %q", e.Code, e.Reason)
}

// ParseClose reads a close frame's payload.
func ParseClose(p []byte) *CloseError {
	e := &CloseError{}
	if len(p) >= 2 {
		e.Code = int(binary.BigEndian.Uint16(p))
		e.Reason = string(p[2:])
	}
	return e
}
