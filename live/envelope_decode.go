package live

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

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
