package live

// envelopeScanner checks JSON syntax as encoding/json's scanner does, without its
// per-byte indirect call. Every method returns the index just past what it read, or -1
// for invalid input or nesting deeper than maxScanDepth (left to encoding/json).
type envelopeScanner struct {
	p     []byte
	flags uint8 // strSpaced, strHTML: seen so far outside and inside strings
}

// maxScanDepth bounds the scanner's recursion; deeper values are rare and go to
// encoding/json, which has its own limit (10000) and error.
const maxScanDepth = 1000

// Flags of what a scan met; all but strNonASCII and strEscaped make json.Marshal rewrite
// the value.
const (
	strEscaped  uint8 = 1 << iota // a backslash escape in a string
	strNonASCII                   // a byte >= 0x80 in a string
	strHTML                       // <, >, & or U+2028/U+2029, which json.Marshal escapes
	strSpaced                     // whitespace between tokens, which json.Compact drops
)

// String byte classes: strPlain bytes need no attention inside a string.
const (
	strPlain = iota
	strQuote
	strBackslash
	strControl
	strHTMLByte
	strHigh
)

var jsonStrClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = strControl
	}
	t['"'], t['\\'] = strQuote, strBackslash
	t['<'], t['>'], t['&'] = strHTMLByte, strHTMLByte, strHTMLByte
	for c := 0x80; c < 0x100; c++ {
		t[c] = strHigh
	}
	return t
}()

// space skips whitespace from i.
func (s *envelopeScanner) space(i int) int {
	j := i
	for j < len(s.p) && (s.p[j] == ' ' || s.p[j] == '\n' || s.p[j] == '\r' || s.p[j] == '\t') {
		j++
	}
	if j != i {
		s.flags |= strSpaced
	}
	return j
}

// str reads the string starting with the quote at i and reports what it holds.
func (s *envelopeScanner) str(i int) (end int, flags uint8) {
	p := s.p
	for i++; i < len(p); {
		switch jsonStrClass[p[i]] {
		case strPlain:
			i++
		case strQuote:
			s.flags |= flags & strHTML
			return i + 1, flags
		case strBackslash:
			if i+1 >= len(p) {
				return -1, 0
			}
			flags |= strEscaped
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p) || !isJSONHex(p[i+2]) || !isJSONHex(p[i+3]) || !isJSONHex(p[i+4]) || !isJSONHex(p[i+5]) {
					return -1, 0
				}
				i += 6
			default:
				return -1, 0
			}
		case strControl:
			return -1, 0
		case strHTMLByte:
			flags |= strHTML
			i++
		case strHigh:
			flags |= strNonASCII
			if p[i] == 0xe2 && i+2 < len(p) && p[i+1] == 0x80 && (p[i+2] == 0xa8 || p[i+2] == 0xa9) {
				flags |= strHTML // U+2028 or U+2029
			}
			i++
		}
	}
	return -1, 0
}

func isJSONHex(c byte) bool { return c-'0' < 10 || (c|0x20)-'a' < 6 }

// value reads one JSON value starting exactly at i (no whitespace before it).
func (s *envelopeScanner) value(i, depth int) int {
	p := s.p
	if i >= len(p) {
		return -1
	}
	switch c := p[i]; {
	case c == '"':
		end, _ := s.str(i)
		return end
	case c == '{' || c == '[':
		if depth >= maxScanDepth {
			return -1
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		if i = s.space(i + 1); i < len(p) && p[i] == closer {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(p) || p[i] != '"' {
					return -1
				}
				if i, _ = s.str(i); i < 0 {
					return -1
				}
				if i = s.space(i); i >= len(p) || p[i] != ':' {
					return -1
				}
				i = s.space(i + 1)
			}
			if i = s.value(i, depth+1); i < 0 {
				return -1
			}
			if i = s.space(i); i >= len(p) {
				return -1
			}
			if p[i] == closer {
				return i + 1
			}
			if p[i] != ',' {
				return -1
			}
			i = s.space(i + 1)
		}
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	case c == '-' || c-'0' < 10:
		return s.number(i)
	}
	return -1
}

func (s *envelopeScanner) literal(i int, word string) int {
	if len(s.p)-i < len(word) || string(s.p[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; what may follow it is the
// caller's check.
func (s *envelopeScanner) number(i int) int {
	p := s.p
	if p[i] == '-' {
		i++
	}
	switch {
	case i >= len(p):
		return -1
	case p[i] == '0':
		i++
	case p[i]-'1' < 9:
		i = jsonDigits(p, i+1)
	default:
		return -1
	}
	if i < len(p) && p[i] == '.' {
		if j := jsonDigits(p, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		j := jsonDigits(p, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func jsonDigits(p []byte, i int) int {
	for i < len(p) && p[i]-'0' < 10 {
		i++
	}
	return i
}
