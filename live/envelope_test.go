package live

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/gobwas/ws"
)

var envelopeCases = []struct {
	name  string
	topic string
	data  string
}{
	{"object", "chat:room1", `{"text":"Hello!"}`},
	{"whitespace is compacted", "t", " { \"a\" : [ 1 , 2 ] }\n"},
	{"html is escaped", "<b>&", `{"html":"<script>&amp;</script>"}`},
	{"line separators are escaped", "t", "\"\u2028\u2029\""},
	{"empty data is omitted", "t", ""},
	{"null data", "t", "null"},
	{"empty topic is omitted", "", `1`},
	{"both empty", "", ""},
	{"unicode topic", "комната/\x7f\u00e9", `"ok"`},
	{"invalid utf-8 topic", "bad\xff", `true`},
	{"control characters", "a\tb\nc\x01", `"x\ty"`},
	{"invalid json", "t", `{"a":}`},
	{"two values", "t", `1 2`},
	{"trailing garbage", "t", `{} x`},
	{"big number", "t", `123456789012345678901234567890e-7`},
}

// TestEncodeFrameMatchesJSONMarshal: what a client receives is exactly mizu's output,
// json.Marshal(Message{...}), and invalid data fails as json.Marshal fails.
func TestEncodeFrameMatchesJSONMarshal(t *testing.T) {
	for _, tc := range envelopeCases {
		t.Run(tc.name, func(t *testing.T) {
			checkEnvelope(t, tc.topic, []byte(tc.data))
		})
	}
}

func checkEnvelope(t *testing.T, topic string, data []byte) {
	t.Helper()
	want, wantErr := json.Marshal(Message{Topic: topic, Data: data})
	f, err := encodeFrame(topicJSON(topic), data)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("encodeFrame error %v, json.Marshal error %v", err, wantErr)
	}
	if err != nil {
		return
	}
	defer f.Release()
	hdr, err := ws.ReadHeader(bytes.NewReader(f.B))
	if err != nil {
		t.Fatalf("bad frame header: %v", err)
	}
	if !hdr.Fin || hdr.OpCode != ws.OpText || hdr.Masked {
		t.Fatalf("header %+v, want an unmasked final text frame", hdr)
	}
	body := f.B[ws.HeaderSize(hdr):]
	if int64(len(body)) != hdr.Length {
		t.Fatalf("header length %d, body %d bytes", hdr.Length, len(body))
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("frame body\n%q\nwant (json.Marshal)\n%q", body, want)
	}
}

func FuzzEncodeEnvelope(f *testing.F) {
	for _, tc := range envelopeCases {
		f.Add(tc.topic, []byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, topic string, data []byte) {
		checkEnvelope(t, topic, data)
	})
}

// FuzzDecodeEnvelope: decoding never panics, agrees with json.Unmarshal, hands out data
// that does not alias the input, and what it accepts re-encodes to a frame that decodes
// to the same topic and data.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"topic":"a","data":{"x":1}}`, `{"TOPIC":"a"}`, `{"topic":1}`, `[]`, `null`,
		`{"data":null}`, `{"topic":"a","data":"\u003c"}`, `{"topic":"a","topic":"b"}`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		in := bytes.Clone(p)
		topic, data, err := decodeEnvelope(p)
		var m Message
		wantErr := json.Unmarshal(in, &m)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decode error %v, json.Unmarshal error %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if topic != m.Topic || !bytes.Equal(data, m.Data) {
			t.Fatalf("decoded (%q, %q), json.Unmarshal gives (%q, %q)", topic, data, m.Topic, m.Data)
		}
		if len(data) > 0 && len(p) > 0 {
			before := bytes.Clone(data)
			for i := range p {
				p[i] = 0
			}
			if !bytes.Equal(data, before) {
				t.Fatal("data aliases the input buffer")
			}
		}
		frame, err := encodeFrame(topicJSON(topic), data)
		if err != nil {
			return // e.g. data "   " is valid inside an object but not alone
		}
		defer frame.Release()
		hdr, _ := ws.ReadHeader(bytes.NewReader(frame.B))
		t2, d2, err := decodeEnvelope(frame.B[ws.HeaderSize(hdr):])
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		var compact bytes.Buffer
		if len(data) > 0 {
			_ = json.Compact(&compact, data)
		}
		if t2 != topic && !(topic != "" && t2 == "") {
			t.Fatalf("topic %q came back as %q", topic, t2)
		}
		if len(d2) > 0 || compact.Len() > 0 {
			var a, b any
			if json.Unmarshal(d2, &a) != nil || json.Unmarshal(compact.Bytes(), &b) != nil {
				t.Fatalf("data %q came back as %q", data, d2)
			}
		}
	})
}
