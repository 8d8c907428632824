package frame

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// MaxHeaderSize is the largest header of a server frame: 2 bytes plus an
// 8-byte extended payload length (server frames carry no masking key).
const MaxHeaderSize = 10

// maxClientHeaderSize adds the 4-byte masking key every client frame has.
const maxClientHeaderSize = MaxHeaderSize + 4

// checkStart applies every rule that the first two bytes of a client frame
// header can break, so that a bad frame is refused before the rest of its
// header arrives. inMessage tells whether a fragmented message is in
// progress; h is asked whether compression was negotiated only when RSV1 is set.
func checkStart(b0, b1 byte, inMessage bool, h Handler) *Error {
	op := ws.OpCode(b0 & 0x0f)
	if b0&0x70 != 0 {
		if err := checkRsv(b0, h); err != nil {
			return err
		}
	}
	switch {
	case op.IsReserved():
		return newError(ws.StatusProtocolError, reasonOpReserved)
	case op.IsControl() && b0&0x80 == 0:
		return newError(ws.StatusProtocolError, reasonControlFragmented)
	case op.IsControl() && b1&0x7f > ws.MaxControlFramePayloadSize:
		return newError(ws.StatusProtocolError, reasonControlTooLong)
	case b1&0x80 == 0:
		return newError(ws.StatusProtocolError, reasonUnmasked)
	case op == ws.OpContinuation && !inMessage:
		return newError(ws.StatusProtocolError, reasonNoMessage)
	case op != ws.OpContinuation && op.IsData() && inMessage:
		return newError(ws.StatusProtocolError, reasonMessageUnfinished)
	}
	return nil
}

// clientHeaderLen is the size of a masked frame header given its second byte.
func clientHeaderLen(b1 byte) int {
	switch b1 & 0x7f {
	case 126:
		return 2 + 2 + 4
	case 127:
		return 2 + 8 + 4
	}
	return 2 + 4
}

// decodeHeader decodes a complete client frame header, which checkStart has
// accepted. A length encoded in more bytes than needed is accepted: RFC 6455
// section 5.2 puts the "minimal number of bytes" rule on the sender, and
// common clients and servers do not enforce it.
func decodeHeader(b []byte) (ws.Header, *Error) {
	h := ws.Header{
		Fin:    b[0]&0x80 != 0,
		Rsv:    (b[0] & 0x70) >> 4,
		OpCode: ws.OpCode(b[0] & 0x0f),
		Masked: true,
	}
	switch n := b[1] & 0x7f; n {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		b = b[4:]
	case 127:
		n := binary.BigEndian.Uint64(b[2:10])
		if n>>63 != 0 {
			return h, newError(ws.StatusProtocolError, reasonLengthMSB)
		}
		h.Length = int64(n)
		b = b[10:]
	default:
		h.Length = int64(n)
		b = b[2:]
	}
	copy(h.Mask[:], b[:4])
	return h, nil
}

// checkLength refuses a data frame that would take the message over limit
// (0 or less: no limit), before any byte of its payload is stored. For a
// compressed message the compressed bytes get some slack (compressedLimit);
// inflate applies limit itself.
func checkLength(h ws.Header, assembled int, limit int64, compressed bool) *Error {
	if compressed {
		limit = compressedLimit(limit)
	}
	if limit > 0 && h.OpCode.IsData() && h.Length > limit-int64(assembled) {
		return newError(ws.StatusMessageTooBig, reasonTooLarge)
	}
	return nil
}

// HeaderSize returns the size of the header of a server frame with a payload
// of payloadLen bytes: 2, 4 or 10.
func HeaderSize(payloadLen int) int {
	switch {
	case payloadLen <= 125:
		return 2
	case payloadLen <= 0xffff:
		return 4
	}
	return MaxHeaderSize
}

// PutHeader writes the header of a final, unmasked server frame into
// dst[:HeaderSize(payloadLen)] and returns its size. It panics if dst is
// shorter than that or payloadLen is negative.
func PutHeader(dst []byte, op ws.OpCode, payloadLen int) int {
	if payloadLen < 0 {
		panic("frame: negative payload length")
	}
	n := HeaderSize(payloadLen)
	_ = dst[n-1]
	dst[0] = 0x80 | byte(op&0x0f)
	switch n {
	case 2:
		dst[1] = byte(payloadLen)
	case 4:
		dst[1] = 126
		binary.BigEndian.PutUint16(dst[2:4], uint16(payloadLen))
	default:
		dst[1] = 127
		binary.BigEndian.PutUint64(dst[2:10], uint64(payloadLen))
	}
	return n
}
