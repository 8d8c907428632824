package live

import (
	"bytes"
	"encoding/json"
	"sync"
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
