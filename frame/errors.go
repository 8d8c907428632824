package frame

import (
	"errors"
	"strconv"

	"github.com/gobwas/ws"
)

var (
	// ErrProtocol matches every [*Error] with close code 1002: the peer broke a
	// framing rule of RFC 6455.
	ErrProtocol = errors.New("frame: protocol error")
	// ErrInvalidUTF8 matches every [*Error] with close code 1007: a text message
	// or a close reason is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("frame: invalid UTF-8 text")
	// ErrTooLarge matches every [*Error] with close code 1009: a message is
	// larger than the limit given to [Reader.Feed].
	ErrTooLarge = errors.New("frame: message too large")
	// ErrPause may be returned by a [Handler] method to stop [Reader.FeedSome]
	// right after the frame it was handed: FeedSome returns how many bytes it
	// consumed and the Reader stays usable, so the rest can be fed later. It is
	// how a caller bounds the messages handled in one turn.
	ErrPause = errors.New("frame: pause")
)

// Error is a protocol violation by the peer, with the status code the server
// should send in its close frame. Test it with errors.Is against
// [ErrProtocol], [ErrInvalidUTF8] or [ErrTooLarge], or read Code directly.
type Error struct {
	// Code is the close status code for the violation: 1002, 1007 or 1009.
	Code ws.StatusCode
	// Reason says which rule was broken; it is short enough to be sent as
	// the reason of a close frame.
	Reason string
}

// Error returns the sentinel text, the code and the reason, e.g.
// "frame: protocol error (1002): unmasked client frame".
func (e *Error) Error() string {
	prefix := "frame: protocol violation"
	if s := e.sentinel(); s != nil {
		prefix = s.Error()
	}
	return prefix + " (" + strconv.Itoa(int(e.Code)) + "): " + e.Reason
}

// Is reports whether target is the sentinel error of e's code.
func (e *Error) Is(target error) bool {
	s := e.sentinel()
	return s != nil && s == target
}

func (e *Error) sentinel() error {
	switch e.Code {
	case ws.StatusProtocolError:
		return ErrProtocol
	case ws.StatusInvalidFramePayloadData:
		return ErrInvalidUTF8
	case ws.StatusMessageTooBig:
		return ErrTooLarge
	}
	return nil
}

// newError returns a fresh *Error, so that no caller can change the error
// another connection gets.
func newError(code ws.StatusCode, reason string) *Error {
	return &Error{Code: code, Reason: reason}
}

// Reasons, shared by every code path so that the same bytes give the same
// error however they are split between Feed calls.
const (
	reasonRsv               = "reserved bits set with no extension negotiated"
	reasonRsvNotFirst       = "RSV1 on a control or continuation frame"
	reasonInvalidDeflate    = "invalid compressed data"
	reasonOpReserved        = "reserved opcode"
	reasonControlFragmented = "fragmented control frame"
	reasonControlTooLong    = "control frame payload over 125 bytes"
	reasonUnmasked          = "unmasked client frame"
	reasonNoMessage         = "continuation frame with no message in progress"
	reasonMessageUnfinished = "new data frame before the fragmented message ended"
	reasonLengthMSB         = "64-bit payload length with the most significant bit set"
	reasonCloseShort        = "close payload of 1 byte"
	reasonCloseCode         = "invalid close code"
	reasonInvalidText       = "invalid UTF-8 in text message"
	reasonInvalidClose      = "invalid UTF-8 in close reason"
	reasonTooLarge          = "message over the read limit"
)
