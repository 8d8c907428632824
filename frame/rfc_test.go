package frame

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// serverExamples are single server frames as RFC 6455 section 5.7 spells
// them out, plus the length-encoding boundaries of section 5.2. The writer
// must produce these bytes, and the reader must parse them back once masked
// as a client would.
var serverExamples = []struct {
	name    string
	op      ws.OpCode
	payload []byte
	wire    []byte
}{
	{
		name:    "5.7 single-frame unmasked text message",
		op:      ws.OpText,
		payload: []byte("Hello"),
		wire:    []byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},
	},
	{
		name:    "5.7 unmasked ping request",
		op:      ws.OpPing,
		payload: []byte("Hello"),
		wire:    []byte{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},
	},
	{
		name:    "5.7 256 bytes binary message in a single unmasked frame",
		op:      ws.OpBinary,
		payload: bytes.Repeat([]byte{0xa5}, 256),
		wire:    append([]byte{0x82, 0x7e, 0x01, 0x00}, bytes.Repeat([]byte{0xa5}, 256)...),
	},
	{
		name:    "5.7 64KiB binary message in a single unmasked frame",
		op:      ws.OpBinary,
		payload: bytes.Repeat([]byte{0x5a}, 65536),
		wire: append(
			[]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00},
			bytes.Repeat([]byte{0x5a}, 65536)...,
		),
	},
	{
		name:    "5.2 empty payload",
		op:      ws.OpBinary,
		payload: []byte{},
		wire:    []byte{0x82, 0x00},
	},
	{
		name:    "5.2 125 bytes fit in the 7-bit length",
		op:      ws.OpText,
		payload: bytes.Repeat([]byte("a"), 125),
		wire:    append([]byte{0x81, 125}, bytes.Repeat([]byte("a"), 125)...),
	},
	{
		name:    "5.2 126 bytes take the 16-bit length",
		op:      ws.OpText,
		payload: bytes.Repeat([]byte("b"), 126),
		wire:    append([]byte{0x81, 126, 0x00, 126}, bytes.Repeat([]byte("b"), 126)...),
	},
	{
		name:    "5.2 65535 bytes still take the 16-bit length",
		op:      ws.OpBinary,
		payload: bytes.Repeat([]byte{7}, 65535),
		wire:    append([]byte{0x82, 126, 0xff, 0xff}, bytes.Repeat([]byte{7}, 65535)...),
	},
	{
		name:    "5.5.1 close frame with status 1000",
		op:      ws.OpClose,
		payload: []byte{0x03, 0xe8},
		wire:    []byte{0x88, 0x02, 0x03, 0xe8},
	},
}

// readCase is a stream of client bytes and what the reader must make of it.
type readCase struct {
	name    string
	in      []byte
	limit   int64
	want    []event
	code    ws.StatusCode // close code of the expected *Error; 0: none
	partial bool          // Partial() after the whole input
}

func msg(op ws.OpCode, payload string) event { return event{op: op, payload: payload} }

func closeBody(code uint16, reason string) string {
	return string(binary.BigEndian.AppendUint16(nil, code)) + reason
}

func readCases() []readCase {
	cases := []readCase{
		{
			name: "5.7 single-frame masked text message (the RFC's bytes)",
			in:   []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
			want: []event{msg(ws.OpText, "Hello")},
		},
		{
			name: "5.7 masked ping response (the RFC's bytes)",
			in:   []byte{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
			want: []event{msg(ws.OpPong, "Hello")},
		},
		{
			name: "5.7 fragmented text message",
			in:   concat(fragment(ws.OpText, "Hel"), frame(ws.OpContinuation, "lo")),
			want: []event{msg(ws.OpText, "Hello")},
		},
		{
			name: "5.2 several frames in one read",
			in:   concat(frame(ws.OpText, "a"), frame(ws.OpBinary, "\x00\xff"), frame(ws.OpPing, "p")),
			want: []event{msg(ws.OpText, "a"), msg(ws.OpBinary, "\x00\xff"), msg(ws.OpPing, "p")},
		},
		{
			name: "5.2 empty text and binary messages",
			in:   concat(frame(ws.OpText, ""), frame(ws.OpBinary, "")),
			want: []event{msg(ws.OpText, ""), msg(ws.OpBinary, "")},
		},
		{
			name: "5.2 length in 16 bits where 7 would do is accepted",
			in:   encode(fin|byte(ws.OpText), true, 2, -1, []byte("short")),
			want: []event{msg(ws.OpText, "short")},
		},
		{
			name: "5.2 length in 64 bits where 7 would do is accepted",
			in:   encode(fin|byte(ws.OpBinary), true, 8, -1, []byte("short")),
			want: []event{msg(ws.OpBinary, "short")},
		},
		{
			name: "5.2 64-bit length with the most significant bit set",
			in:   encode(fin|byte(ws.OpBinary), true, 8, -1<<63, nil),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.2 RSV1 set with no extension negotiated",
			in:   encode(fin|rsv1|byte(ws.OpText), true, 0, -1, []byte("x")),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.2 RSV2 set with no extension negotiated",
			in:   encode(fin|rsv2|byte(ws.OpText), true, 0, -1, []byte("x")),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.2 RSV3 set with no extension negotiated",
			in:   encode(fin|rsv3|byte(ws.OpBinary), true, 0, -1, []byte("x")),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.1 a client frame must be masked",
			in:   encode(fin|byte(ws.OpText), false, 0, -1, []byte("Hello")),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.1 an unmasked control frame is refused too",
			in:   encode(fin|byte(ws.OpPing), false, 0, -1, nil),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.4 continuation frame with no message in progress",
			in:   frame(ws.OpContinuation, "lo"),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.4 text frame while a fragmented message is in progress",
			in:   concat(fragment(ws.OpText, "Hel"), frame(ws.OpText, "lo")),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.4 binary fragment while a fragmented message is in progress",
			in:   concat(fragment(ws.OpBinary, "a"), fragment(ws.OpBinary, "b")),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.4 message in three fragments",
			in: concat(
				fragment(ws.OpBinary, "one "),
				fragment(ws.OpContinuation, "two "),
				frame(ws.OpContinuation, "three"),
			),
			want: []event{msg(ws.OpBinary, "one two three")},
		},
		{
			name: "5.4 empty fragments",
			in: concat(
				fragment(ws.OpText, ""),
				fragment(ws.OpContinuation, ""),
				frame(ws.OpContinuation, ""),
			),
			want: []event{msg(ws.OpText, "")},
		},
		{
			name: "5.4 control frames in the middle of a fragmented message",
			in: concat(
				fragment(ws.OpText, "Hel"),
				frame(ws.OpPing, "p1"),
				fragment(ws.OpContinuation, "l"),
				frame(ws.OpPong, ""),
				frame(ws.OpPing, strings.Repeat("z", 125)),
				frame(ws.OpContinuation, "o"),
				frame(ws.OpText, "next"),
			),
			want: []event{
				msg(ws.OpPing, "p1"),
				msg(ws.OpPong, ""),
				msg(ws.OpPing, strings.Repeat("z", 125)),
				msg(ws.OpText, "Hello"),
				msg(ws.OpText, "next"),
			},
		},
		{
			name: "5.4 close frame in the middle of a fragmented message",
			in: concat(
				fragment(ws.OpBinary, "ab"),
				frame(ws.OpClose, closeBody(1000, "")),
			),
			want:    []event{msg(ws.OpClose, closeBody(1000, ""))},
			partial: true,
		},
		{
			name: "5.5 ping must not be fragmented",
			in:   fragment(ws.OpPing, "p"),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.5 close must not be fragmented",
			in:   fragment(ws.OpClose, ""),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.5 control payload of 125 bytes",
			in:   frame(ws.OpPong, strings.Repeat("q", 125)),
			want: []event{msg(ws.OpPong, strings.Repeat("q", 125))},
		},
		{
			name: "5.5 control payload of 126 bytes",
			in:   frame(ws.OpPing, strings.Repeat("q", 126)),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.5 control payload length in 64 bits",
			in:   encode(fin|byte(ws.OpPing), true, 8, -1, []byte("q")),
			code: ws.StatusProtocolError,
		},
		{
			name: "5.5.2 ping with payload",
			in:   frame(ws.OpPing, "are you there"),
			want: []event{msg(ws.OpPing, "are you there")},
		},
		{
			name: "5.5.3 pong with no payload",
			in:   frame(ws.OpPong, ""),
			want: []event{msg(ws.OpPong, "")},
		},
		{
			name: "5.5.1 close with no body",
			in:   frame(ws.OpClose, ""),
			want: []event{msg(ws.OpClose, "")},
		},
		{
			name: "5.5.1 close with code and reason",
			in:   frame(ws.OpClose, closeBody(1001, "going away \u00e9")),
			want: []event{msg(ws.OpClose, closeBody(1001, "going away \u00e9"))},
		},
		{
			name: "5.5.1 close body of 1 byte",
			in:   frame(ws.OpClose, "\x03"),
			code: ws.StatusProtocolError,
		},
		{
			name: "7.4.1 close reason must be UTF-8",
			in:   frame(ws.OpClose, closeBody(1000, "bad \xff")),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "5.6 text in one frame",
			in:   frame(ws.OpText, "κόσμε \U0001F600"),
			want: []event{msg(ws.OpText, "κόσμε \U0001F600")},
		},
		{
			name: "5.6 multi-byte runes split across fragments",
			in: concat(
				fragment(ws.OpText, "κ\xcf"),
				fragment(ws.OpContinuation, "\x8cσμε \xf0\x9f"),
				frame(ws.OpPing, ""),
				frame(ws.OpContinuation, "\x98\x80"),
			),
			want: []event{msg(ws.OpPing, ""), msg(ws.OpText, "κόσμε \U0001F600")},
		},
		{
			name: "8.1 surrogate half in text (ED A0 80)",
			in:   frame(ws.OpText, "ab\xed\xa0\x80cd"),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "8.1 overlong NUL in text (C0 80)",
			in:   frame(ws.OpText, "\xc0\x80"),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "8.1 overlong three-byte form in text (E0 80 80)",
			in:   frame(ws.OpText, "\xe0\x80\x80"),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "8.1 code point over U+10FFFF in text (F4 90 80 80)",
			in:   frame(ws.OpText, "\xf4\x90\x80\x80"),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "8.1 text ending in an incomplete sequence",
			in:   frame(ws.OpText, "abc\xe2\x82"),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "8.1 fragmented text ending in an incomplete sequence",
			in:   concat(fragment(ws.OpText, "abc\xe2"), frame(ws.OpContinuation, "\x82")),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "8.1 invalid text fails before its message ends",
			in:   concat(fragment(ws.OpText, "ok\xf5"), fragment(ws.OpContinuation, "more")),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "8.1 invalid text fails before its frame ends",
			in:   encode(fin|byte(ws.OpText), true, 0, 100, []byte("ok\xed\xa0")),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "8.1 binary is not checked for UTF-8",
			in:   frame(ws.OpBinary, "\xed\xa0\x80\xff"),
			want: []event{msg(ws.OpBinary, "\xed\xa0\x80\xff")},
		},
		{
			name:  "10.4 message exactly at the limit",
			in:    frame(ws.OpBinary, "12345"),
			limit: 5,
			want:  []event{msg(ws.OpBinary, "12345")},
		},
		{
			name:  "10.4 message one byte over the limit",
			in:    frame(ws.OpBinary, "123456"),
			limit: 5,
			code:  ws.StatusMessageTooBig,
		},
		{
			name:  "10.4 fragmented message exactly at the limit",
			in:    concat(fragment(ws.OpText, "123"), frame(ws.OpContinuation, "45")),
			limit: 5,
			want:  []event{msg(ws.OpText, "12345")},
		},
		{
			name:  "10.4 fragmented message one byte over the limit",
			in:    concat(fragment(ws.OpText, "123"), frame(ws.OpContinuation, "456")),
			limit: 5,
			code:  ws.StatusMessageTooBig,
		},
		{
			name:  "10.4 the limit is checked on the declared length",
			in:    encode(fin|byte(ws.OpBinary), true, 8, 1<<40, []byte("abc")),
			limit: 1 << 20,
			code:  ws.StatusMessageTooBig,
		},
		{
			name:  "10.4 control frames do not count toward the limit",
			in:    concat(fragment(ws.OpText, "12"), frame(ws.OpPing, "pingpong"), frame(ws.OpContinuation, "3")),
			limit: 3,
			want:  []event{msg(ws.OpPing, "pingpong"), msg(ws.OpText, "123")},
		},
		{
			name:    "6.2 stream ending inside a header",
			in:      concat(frame(ws.OpText, "a"), frame(ws.OpBinary, strings.Repeat("b", 300))[:3]),
			want:    []event{msg(ws.OpText, "a")},
			partial: true,
		},
		{
			name:    "6.2 stream ending inside a payload",
			in:      frame(ws.OpBinary, "abcdef")[:9],
			partial: true,
		},
		{
			name:    "6.2 stream ending between fragments",
			in:      fragment(ws.OpBinary, "abc"),
			partial: true,
		},
		{
			name:    "6.2 huge declared length holds only what arrived",
			in:      encode(fin|byte(ws.OpBinary), true, 8, 1<<62, []byte("0123456789")),
			partial: true,
		},
		{
			name: "7.1.7 nothing is read after a violation",
			in:   concat(frame(ws.OpText, "a"), frame(ws.OpContinuation, "x"), frame(ws.OpText, "b")),
			want: []event{msg(ws.OpText, "a")},
			code: ws.StatusProtocolError,
		},
	}
	for op := ws.OpCode(3); op <= 0xf; op++ {
		if op >= ws.OpClose && op <= ws.OpPong {
			continue
		}
		cases = append(cases, readCase{
			name: fmt.Sprintf("5.2 reserved opcode %#x", byte(op)),
			in:   frame(op, "x"),
			code: ws.StatusProtocolError,
		})
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, readCase{
			name: fmt.Sprintf("7.4 close code %d may be sent", code),
			in:   frame(ws.OpClose, closeBody(code, "r")),
			want: []event{msg(ws.OpClose, closeBody(code, "r"))},
		})
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, readCase{
			name: fmt.Sprintf("7.4 close code %d must not be sent", code),
			in:   frame(ws.OpClose, closeBody(code, "")),
			code: ws.StatusProtocolError,
		})
	}
	for _, ex := range serverExamples {
		op := ex.op
		if op == ws.OpClose {
			continue // covered above
		}
		cases = append(cases, readCase{
			name: ex.name + " (masked by a client)",
			in:   maskServerFrame(ex.wire),
			want: []event{msg(op, string(ex.payload))},
		})
	}
	return cases
}

func TestReaderRFC(t *testing.T) {
	for _, tc := range readCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			whole := run(tc.in, nil, tc.limit, 0)
			if !eventsEqual(whole.events, tc.want) || whole.code != tc.code || whole.partial != tc.partial {
				t.Fatalf(
					"got %v code=%d\nwant events=%v code=%d partial=%v",
					whole, whole.code, tc.want, tc.code, tc.partial,
				)
			}
			if tc.code == 0 && whole.err != "" {
				t.Fatalf(
					"unexpected error %s",
					whole.err,
				)
			}
			checkSplits(t, tc.in, tc.limit, 0, whole)
			if paused := runPausing(tc.in, tc.limit, 0); !paused.equal(whole) {
				t.Fatalf("pausing after every frame:\ngot  %v\nwant %v", paused, whole)
			}
		})
	}
}

func eventsEqual(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkSplits feeds in cut at every byte boundary, byte by byte, and in a
// few random pieces; every outcome must be the same as feeding it whole.
// Long inputs are cut at their first and last 256 boundaries and at about
// 128 random ones, to keep the test fast.
func checkSplits(t *testing.T, in []byte, limit int64, failAt int, whole outcome) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(in)), 1))
	var cuts []int
	for c := 1; c < len(in); c++ {
		if len(in) <= 1024 || c < 256 || c > len(in)-256 || rng.IntN(len(in)) < 128 {
			cuts = append(cuts, c)
		}
	}
	for _, c := range cuts {
		if got := run(in, []int{c}, limit, failAt); !got.equal(whole) {
			t.Fatalf(
				"cut at %d of %d:\ngot  %v\nwant %v",
				c, len(in), got, whole,
			)
		}
	}
	every := make([]int, 0, len(in))
	for c := 1; c < len(in); c++ {
		every = append(every, c)
	}
	if got := run(in, every, limit, failAt); !got.equal(whole) {
		t.Fatalf(
			"byte by byte:\ngot  %v\nwant %v",
			got, whole,
		)
	}
	for range 8 {
		cuts := randomCuts(rng, len(in))
		if got := run(in, cuts, limit, failAt); !got.equal(whole) {
			t.Fatalf(
				"random cuts %v:\ngot  %v\nwant %v",
				cuts, got, whole,
			)
		}
	}
}

// randomCuts returns increasing offsets in (0, n).
func randomCuts(rng *rand.Rand, n int) []int {
	var cuts []int
	for c := 0; n > 1; {
		c += 1 + rng.IntN(min(n, 64))
		if c >= n {
			break
		}
		cuts = append(cuts, c)
	}
	return cuts
}

func TestWriterRFC(t *testing.T) {
	for _, ex := range serverExamples {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			if got := AppendFrame(nil, ex.op, ex.payload); !bytes.Equal(got, ex.wire) {
				t.Fatalf(
					"AppendFrame = % x...\nwant % x...",
					got[:min(len(got), 12)], ex.wire[:min(len(ex.wire), 12)],
				)
			}
			hs := len(ex.wire) - len(ex.payload)
			if got := HeaderSize(len(ex.payload)); got != hs {
				t.Fatalf(
					"HeaderSize(%d) = %d, want %d",
					len(ex.payload), got, hs,
				)
			}
			var hdr [MaxHeaderSize]byte
			if n := PutHeader(hdr[:], ex.op, len(ex.payload)); n != hs || !bytes.Equal(hdr[:n], ex.wire[:hs]) {
				t.Fatalf(
					"PutHeader = % x (%d), want % x",
					hdr[:n], n, ex.wire[:hs],
				)
			}
			prefix := []byte("already there")
			if got := AppendFrame(prefix, ex.op, ex.payload); !bytes.Equal(got, concat([]byte("already there"), ex.wire)) {
				t.Fatalf(
					"AppendFrame does not append to %q",
					prefix,
				)
			}
		})
	}
}
