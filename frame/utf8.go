package frame

import "unicode/utf8"

// utf8Validator checks UTF-8 text that arrives in pieces. It reports an
// invalid sequence as soon as the byte that makes it invalid arrives, and it
// carries an incomplete sequence at the end of a piece over to the next one.
//
// Bulk bytes go through utf8.Valid, which has a fast path for ASCII; only a
// sequence cut at a piece boundary is stepped byte by byte.
//
// The zero value is ready at the start of a text.
type utf8Validator struct {
	need   uint8 // continuation bytes still expected for the current sequence
	lo, hi byte  // range allowed for the next continuation byte
}

// write validates the next piece of text. It returns false when the text
// seen so far can not be the start of valid UTF-8.
func (v *utf8Validator) write(p []byte) bool {
	// Finish the sequence left open by the previous piece.
	for v.need > 0 && len(p) > 0 {
		if !v.step(p[0]) {
			return false
		}
		p = p[1:]
	}
	if len(p) == 0 {
		return true
	}
	// Find where the last sequence starts: a sequence has at most 3
	// continuation bytes, so its first byte is within the last 4. If that
	// sequence is incomplete it is stepped (and carried) rather than given
	// to utf8.Valid, which would reject it.
	body, tail := p, p[len(p):]
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if b := p[i]; b < 0x80 || b >= 0xC0 {
			if sequenceLen(b) > len(p)-i {
				body, tail = p[:i], p[i:]
			}
			break
		}
	}
	if !utf8.Valid(body) {
		return false
	}
	for _, b := range tail {
		if !v.step(b) {
			return false
		}
	}
	return true
}

// complete reports whether the text ends on a sequence boundary.
func (v *utf8Validator) complete() bool { return v.need == 0 }

// step advances over one byte; the ranges are those of RFC 3629 section 4,
// which exclude overlong forms, surrogates and code points over U+10FFFF.
func (v *utf8Validator) step(b byte) bool {
	if v.need > 0 {
		if b < v.lo || b > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
		return true
	}
	v.lo, v.hi = 0x80, 0xBF
	switch {
	case b < 0x80:
		return true
	case b < 0xC2: // continuation byte, or C0/C1: overlong
		return false
	case b < 0xE0:
		v.need = 1
	case b == 0xE0: // E0 80..9F would be overlong
		v.need, v.lo = 2, 0xA0
	case b == 0xED: // ED A0..BF would be a surrogate
		v.need, v.hi = 2, 0x9F
	case b < 0xF0:
		v.need = 2
	case b == 0xF0: // F0 80..8F would be overlong
		v.need, v.lo = 3, 0x90
	case b < 0xF4:
		v.need = 3
	case b == 0xF4: // F4 90.. would be over U+10FFFF
		v.need, v.hi = 3, 0x8F
	default: // F5..FF never appear in UTF-8
		return false
	}
	return true
}

// sequenceLen is the length of the sequence that starts with b; 1 for
// bytes that can not start a multi-byte sequence, so that utf8.Valid sees
// (and rejects) them.
func sequenceLen(b byte) int {
	switch {
	case b >= 0xC2 && b < 0xE0:
		return 2
	case b >= 0xE0 && b < 0xF0:
		return 3
	case b >= 0xF0 && b <= 0xF4:
		return 4
	}
	return 1
}
