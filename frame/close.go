package frame

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// checkClosePayload applies RFC 6455 section 5.5.1 and 7.4 to the (unmasked)
// payload of a close frame: empty, or a valid status code followed by a
// UTF-8 reason.
func checkClosePayload(p []byte) *Error {
	switch {
	case len(p) == 0:
		return nil
	case len(p) == 1:
		return newError(ws.StatusProtocolError, reasonCloseShort)
	case !validCloseCode(ws.StatusCode(binary.BigEndian.Uint16(p))):
		return newError(ws.StatusProtocolError, reasonCloseCode)
	case !utf8.Valid(p[2:]):
		return newError(ws.StatusInvalidFramePayloadData, reasonInvalidClose)
	}
	return nil
}

// validCloseCode reports whether a peer may send code in a close frame.
//
// ws.CheckCloseFrameData implements RFC 6455 section 7.4 for 0-4999 (it
// refuses <1000, 1004-1006, 1015 and the unassigned 1016-2999) but it
// refuses 1012-1014, which the IANA registry has assigned since (service
// restart, try again later, bad gateway) and browsers send, and it accepts
// 5000 and above, which section 7.4.2 does not define.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1012 && code <= 1014:
		return true
	case code >= 5000:
		return false
	}
	return ws.CheckCloseFrameData(code, "") == nil
}

// AppendClose appends a whole close frame to dst and returns the extended
// slice. Code 0 makes a close frame with an empty body (the reason is then
// ignored). A reason longer than the 123 bytes a control frame leaves for it
// is cut at the last rune boundary that fits. The code is not checked: send
// only codes an endpoint may send (1005, 1006 and 1015 may not).
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if code == 0 {
		return AppendFrame(dst, ws.OpClose, nil)
	}
	const maxReason = ws.MaxControlFramePayloadSize - 2
	if len(reason) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	var body [ws.MaxControlFramePayloadSize]byte
	binary.BigEndian.PutUint16(body[:2], uint16(code))
	n := copy(body[2:], reason)
	return AppendFrame(dst, ws.OpClose, body[:2+n])
}
