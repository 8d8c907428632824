package live

import (
	"bytes"
	"encoding/json"
	"testing"
)

// benchMessage is a typical 100-byte client message of the issue 13 echo workload.
var benchMessage = []byte(`{"topic":"chat:room1","data":{"user":"alice","text":"Hello, this is a message for the echo bench"}}`)

// BenchmarkDecodeEnvelope compares decodeEnvelope with json.Unmarshal into a Message, its
// reference, in one run so a busy machine slows both alike.
func BenchmarkDecodeEnvelope(b *testing.B) {
	b.Run("livepoll", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchMessage)))
		for b.Loop() {
			if _, _, err := decodeEnvelope(benchMessage); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchMessage)))
		for b.Loop() {
			var m Message
			if err := json.Unmarshal(benchMessage, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeEnvelope measures the two ways a frame is built: Session.Send encodes the
// topic on every call, Publish reuses the topic's cached encoding. json.Marshal is the
// reference output both must equal.
func BenchmarkEncodeEnvelope(b *testing.B) {
	var m Message
	if err := json.Unmarshal(benchMessage, &m); err != nil {
		b.Fatal(err)
	}
	b.Run("send", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := encodeMessageFrame(m.Topic, m.Data)
			if err != nil {
				b.Fatal(err)
			}
			f.Release()
		}
	})
	b.Run("send-topicJSON", func(b *testing.B) { // Session.Send before encodeMessageFrame
		b.ReportAllocs()
		for b.Loop() {
			f, err := encodeFrame(topicJSON(m.Topic), m.Data)
			if err != nil {
				b.Fatal(err)
			}
			f.Release()
		}
	})
	cached := topicJSON(m.Topic)
	b.Run("publish", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := encodeFrame(cached, m.Data)
			if err != nil {
				b.Fatal(err)
			}
			f.Release()
		}
	})
	// Data with spaces takes json.Compact's path, as every message did before the scan.
	spaced := []byte(`{ "user": "alice", "text": "Hello, this is a message for the echo bench" }`)
	b.Run("publish-spaced", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := encodeFrame(cached, spaced)
			if err != nil {
				b.Fatal(err)
			}
			f.Release()
		}
	})
	// Browsers' JSON.stringify leaves <, >, & as they are: only HTMLEscape's copy is needed.
	html := []byte(`{"user":"alice","text":"Hello, <b>this</b> is a message for the echo bench"}`)
	b.Run("publish-html", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := encodeFrame(cached, html)
			if err != nil {
				b.Fatal(err)
			}
			f.Release()
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDataCheck compares the ways to learn whether data may go into a frame as it is:
// the scan encodeFrame uses (dataForm), json.Valid (which would leave compaction
// undecided) and json.Compact, which every frame paid before.
func BenchmarkDataCheck(b *testing.B) {
	var m Message
	if err := json.Unmarshal(benchMessage, &m); err != nil {
		b.Fatal(err)
	}
	b.Run("dataForm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if dataForm(m.Data) != dataAsIs {
				b.Fatal("benchmark data not in json.Marshal's form")
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(m.Data) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Compact", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := json.Compact(&buf, m.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
