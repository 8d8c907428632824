package live

import (
	"bytes"
	"encoding/json"
	"sync"

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

// decodeEnvelope reads a client message. It is exactly json.Unmarshal into a Message, so
// keys match case-insensitively as they do in mizu; data is a copy the caller may keep.
func decodeEnvelope(p []byte) (topic string, data []byte, err error) {
	var m Message
	if err := json.Unmarshal(p, &m); err != nil {
		return "", nil, err
	}
	return m.Topic, m.Data, nil
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
	var d []byte
	if len(data) > 0 {
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

	n := 2 // braces
	if topicJSON != nil {
		n += len(`"topic":`) + len(topicJSON)
	}
	if d != nil {
		n += len(`"data":`) + len(d)
		if topicJSON != nil {
			n++ // comma
		}
	}
	f := pool.NewShared(frame.MaxHeaderSize + n)
	start := frame.MaxHeaderSize - frame.HeaderSize(n)
	frame.PutHeader(f.B[start:], ws.OpText, n)
	b := append(f.B[:frame.MaxHeaderSize], '{')
	if topicJSON != nil {
		b = append(b, `"topic":`...)
		b = append(b, topicJSON...)
	}
	if d != nil {
		if topicJSON != nil {
			b = append(b, ',')
		}
		b = append(b, `"data":`...)
		b = append(b, d...)
	}
	b = append(b, '}')
	f.B = b[start:]
	return f, nil
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
	b, _ := json.Marshal(topic) // a string always marshals
	return b
}
