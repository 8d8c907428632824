package live

import (
	"bytes"
	"encoding/json"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/frame"
	"github.com/livepoll/livepoll/pool"
)

// Message is the envelope of every message in both directions: {"topic":...,"data":...}.
type Message struct {
	// Topic is the routing key.
	Topic string `json:"topic,omitempty"`
	// Data is the payload, any JSON value.
	Data json.RawMessage `json:"data,omitempty"`
}

// decodeEnvelope reads a client message. It gives exactly what json.Unmarshal into a
// Message gives, so keys match case-insensitively as they do in mizu; data is a copy the
// caller may keep. Reflection costs more than the read syscall's share of a small message,
// so the common shapes are parsed by envelopeScanner; anything it is unsure of, every
// error included, goes to json.Unmarshal, which stays the authority on odd input.
func decodeEnvelope(p []byte) (topic string, data []byte, err error) {
	if topic, data, ok := decodeEnvelopeFast(p); ok {
		return topic, data, nil
	}
	var m Message
	if err := json.Unmarshal(p, &m); err != nil {
		return "", nil, err
	}
	return m.Topic, m.Data, nil
}

// decodeEnvelopeFast handles a valid JSON object whose keys are plain ASCII; ok is false
// for anything else. Like json.Unmarshal it ignores unknown keys, lets the last of
// duplicate keys win, leaves the topic unset for null and keeps data's bytes as written
// (null included).
func decodeEnvelopeFast(p []byte) (topic string, data []byte, ok bool) {
	s := envelopeScanner{p: p}
	i := s.space(0)
	if i >= len(p) || p[i] != '{' {
		return "", nil, false
	}
	var topicRaw, dataRaw []byte
	var topicFlags uint8
	i = s.space(i + 1)
	if i < len(p) && p[i] == '}' {
		i++
	} else {
		for {
			if i >= len(p) || p[i] != '"' {
				return "", nil, false
			}
			end, flags := s.str(i)
			if end < 0 || flags&(strEscaped|strNonASCII) != 0 {
				return "", nil, false // json.Unmarshal folds Unicode keys; leave those to it
			}
			key := p[i+1 : end-1]
			if i = s.space(end); i >= len(p) || p[i] != ':' {
				return "", nil, false
			}
			start := s.space(i + 1)
			if i = s.value(start, 1); i < 0 {
				return "", nil, false
			}
			switch {
			case asciiEqualFold(key, "topic"):
				switch p[start] {
				case '"':
					topicRaw = p[start:i]
					_, topicFlags = s.str(start)
				case 'n': // null leaves a string field as it was
				default:
					return "", nil, false // json.Unmarshal's type error
				}
			case asciiEqualFold(key, "data"):
				dataRaw = p[start:i]
			}
			if i = s.space(i); i >= len(p) {
				return "", nil, false
			}
			if p[i] == '}' {
				i++
				break
			}
			if p[i] != ',' {
				return "", nil, false
			}
			i = s.space(i + 1)
		}
	}
	if s.space(i) != len(p) {
		return "", nil, false
	}
	if topicRaw != nil {
		topic = unquoteTopic(topicRaw[1:len(topicRaw)-1], topicFlags)
	}
	return topic, bytes.Clone(dataRaw), true
}

// asciiEqualFold reports whether key equals the lower-case ASCII name ignoring case.
func asciiEqualFold(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := range key {
		if c := key[i]; c != name[i] && c+('a'-'A') != name[i] {
			return false
		}
	}
	return true
}

// unquoteTopic decodes the inside of a valid JSON string as json.Unmarshal does: invalid
// UTF-8 and unpaired surrogates become U+FFFD.
func unquoteTopic(s []byte, flags uint8) string {
	if flags&strEscaped == 0 && (flags&strNonASCII == 0 || utf8.Valid(s)) {
		return string(s)
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '\\' && s[i+1] == 'u':
			r := jsonHex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = jsonHex4(s[i+2:])
				}
				if r = utf16.DecodeRune(r, r2); r != utf8.RuneError {
					i += 6
				}
			}
			b = utf8.AppendRune(b, r)
		case c == '\\':
			b = append(b, jsonUnescape[s[i+1]])
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	return string(b)
}

// jsonUnescape maps the letter after a backslash to the byte it stands for.
var jsonUnescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// jsonHex4 reads the four hex jsonDigits the scanner has already checked.
func jsonHex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// maxPooledScratch keeps a huge message from pinning a huge scratch buffer in the pool.
const maxPooledScratch = 64 << 10

var scratchPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getScratch() *bytes.Buffer { return scratchPool.Get().(*bytes.Buffer) }

func putScratch(b *bytes.Buffer) {
	if b.Cap() <= maxPooledScratch {
		b.Reset()
		scratchPool.Put(b)
	}
}

// encodeFrame returns a server text frame carrying exactly the bytes json.Marshal would
// produce for Message{Topic: topic, Data: data} — compacted, HTML-escaped — where
// topicJSON is the topic already encoded as a JSON string (nil for an empty topic). It
// fails, as json.Marshal does, when data is not valid JSON. The caller owns one reference.
func encodeFrame(topicJSON, data []byte) (*pool.Shared, error) {
	return envelopeFrame("", topicJSON, data)
}

// encodeMessageFrame is encodeFrame for a topic not yet encoded: Session.Send's path,
// which writes a plain topic straight into the frame instead of allocating its JSON.
func encodeMessageFrame(topic string, data []byte) (*pool.Shared, error) {
	if !plainTopic(topic) {
		return envelopeFrame("", topicJSON(topic), data)
	}
	return envelopeFrame(topic, nil, data)
}

// envelopeFrame writes the envelope with either a plain topic, quoted here, or a topic
// already in JSON.
func envelopeFrame(topic string, topicJSON, data []byte) (*pool.Shared, error) {
	d := data
	switch dataForm(data) {
	case dataAsIs: // copied into the frame as it is
	case dataHTML: // valid and compact already: escaping is all json.Marshal would do
		escaped := getScratch()
		defer putScratch(escaped)
		json.HTMLEscape(escaped, data)
		d = escaped.Bytes()
	case dataRewrite:
		compact := getScratch()
		defer putScratch(compact)
		if err := json.Compact(compact, data); err != nil {
			return nil, err
		}
		d = compact.Bytes()
		if needsHTMLEscape(d) {
			escaped := getScratch()
			defer putScratch(escaped)
			json.HTMLEscape(escaped, d)
			d = escaped.Bytes()
		}
	}

	hasTopic := topic != "" || topicJSON != nil
	n := 2 // braces
	if hasTopic {
		n += len(`"topic":`) + len(topicJSON)
		if topic != "" {
			n += len(topic) + 2
		}
	}
	if len(d) > 0 {
		n += len(`"data":`) + len(d)
		if hasTopic {
			n++ // comma
		}
	}
	f := pool.NewShared(frame.MaxHeaderSize + n)
	start := frame.MaxHeaderSize - frame.HeaderSize(n)
	frame.PutHeader(f.B[start:], ws.OpText, n)
	b := append(f.B[:frame.MaxHeaderSize], '{')
	if topic != "" {
		b = append(b, `"topic":"`...)
		b = append(b, topic...)
		b = append(b, '"')
	} else if topicJSON != nil {
		b = append(b, `"topic":`...)
		b = append(b, topicJSON...)
	}
	if len(d) > 0 {
		if hasTopic {
			b = append(b, ',')
		}
		b = append(b, `"data":`...)
		b = append(b, d...)
	}
	b = append(b, '}')
	f.B = b[start:]
	return f, nil
}

// What json.Marshal does to a RawMessage, as dataForm finds it.
const (
	dataAsIs    = iota // one valid, compact JSON value with nothing to escape (or empty)
	dataHTML           // valid and compact, but holding <, >, & or U+2028/U+2029
	dataRewrite        // anything else: json.Compact decides, and reports invalid JSON
)

// dataForm classifies data in one scan, so that the usual payload needs neither
// json.Compact's scan nor its copy. Browsers' JSON.stringify leaves <, >, & unescaped,
// which is why dataHTML has its own case.
func dataForm(data []byte) int {
	if len(data) == 0 {
		return dataAsIs // omitted from the envelope
	}
	s := envelopeScanner{p: data}
	switch {
	case s.value(0, 0) != len(data) || s.flags&strSpaced != 0:
		return dataRewrite
	case s.flags&strHTML != 0:
		return dataHTML
	}
	return dataAsIs
}

// validJSON is json.Valid, without the scanner's per-byte indirect call for the usual
// shallow value.
func validJSON(data []byte) bool {
	s := envelopeScanner{p: data}
	if i := s.value(s.space(0), 0); i >= 0 && s.space(i) == len(data) {
		return true
	}
	return json.Valid(data) // invalid, or deeper than the scanner goes
}

// needsHTMLEscape reports whether compacted JSON holds a byte json.Marshal escapes:
// <, >, & or the first byte of U+2028/U+2029.
func needsHTMLEscape(p []byte) bool {
	return bytes.ContainsAny(p, "<>&\u2028\u2029")
}

// topicJSON encodes a topic name as json.Marshal encodes a string field.
func topicJSON(topic string) []byte {
	if topic == "" {
		return nil
	}
	if plainTopic(topic) {
		b := make([]byte, 0, len(topic)+2)
		b = append(b, '"')
		b = append(b, topic...)
		return append(b, '"')
	}
	b, _ := json.Marshal(topic) // a string always marshals
	return b
}

// plainTopic reports whether json.Marshal writes topic between quotes unchanged: valid
// UTF-8 without control characters, quote, backslash, <, >, & or U+2028/U+2029 (DEL
// stays as it is).
func plainTopic(topic string) bool {
	for i := 0; i < len(topic); {
		if c := topic[i]; c < utf8.RuneSelf {
			if jsonStrClass[c] != strPlain {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(topic[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

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
