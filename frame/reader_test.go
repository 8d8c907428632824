package frame

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/gobwas/ws"
)

func TestReaderIdleSize(t *testing.T) {
	if size := unsafe.Sizeof(Reader{}); size > 16 {
		t.Fatalf(
			"unsafe.Sizeof(Reader{}) = %d, want at most 16",
			size,
		)
	}
	in := concat(
		fragment(ws.OpText, "Hel"),
		frame(ws.OpPing, "p"),
		frame(ws.OpContinuation, "lo"),
		frame(ws.OpBinary, strings.Repeat("x", 1000)),
	)
	for cut := 1; cut < len(in); cut++ {
		var r Reader
		h := &recorder{}
		if err := r.Feed(slicesClone(in[:cut]), 0, h); err != nil {
			t.Fatal(err)
		}
		// Only the cut between the two messages leaves the reader idle.
		if idle := cut == len(in)-len(frame(ws.OpBinary, strings.Repeat("x", 1000))); r.Partial() == idle || (r.st == nil) != idle {
			t.Fatalf(
				"cut at %d: Partial() = %v, state %p",
				cut, r.Partial(), r.st,
			)
		}
		if err := r.Feed(slicesClone(in[cut:]), 0, h); err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != 0 || r.Partial() || r.st != nil {
			t.Fatalf(
				"cut at %d: after complete messages Buffered() = %d, Partial() = %v, state %p; want an idle reader",
				cut, r.Buffered(), r.Partial(), r.st,
			)
		}
		if len(h.events) != 3 {
			t.Fatalf(
				"cut at %d: got %v",
				cut, h.events,
			)
		}
	}
}

func TestReaderHugeDeclaredLength(t *testing.T) {
	var r Reader
	defer r.Release()
	h := &recorder{}
	in := encode(fin|byte(ws.OpBinary), true, 8, 1<<62, []byte("0123456789"))
	if err := r.Feed(in, 0, h); err != nil {
		t.Fatal(err)
	}
	if got := r.Buffered(); got != 10 {
		t.Fatalf(
			"Buffered() = %d after 10 payload bytes of a frame declaring 2^62",
			got,
		)
	}
	if c := cap(*r.st.msg); c > minBuf {
		t.Fatalf(
			"holding a %d-byte buffer for 10 bytes",
			c,
		)
	}
	more := make([]byte, 5000)
	if err := r.Feed(more, 0, h); err != nil {
		t.Fatal(err)
	}
	if got, c := r.Buffered(), cap(*r.st.msg); got != 5010 || c > 2*5010 {
		t.Fatalf(
			"Buffered() = %d, capacity %d after 5010 bytes; want 5010 and at most twice that",
			got, c,
		)
	}
	if !r.Partial() || len(h.events) != 0 {
		t.Fatalf(
			"Partial() = %v, events %v",
			r.Partial(), h.events,
		)
	}
}

// TestReaderLargeFragmented assembles big messages from many fragments with
// pings between them, read in socket-sized pieces that do not line up with
// frames.
func TestReaderLargeFragmented(t *testing.T) {
	for _, tc := range []struct {
		name     string
		op       ws.OpCode
		size     int
		fragment int
		read     int
		limits   []int64
	}{
		{
			name:     "1 MiB text in 1000-byte fragments",
			op:       ws.OpText,
			size:     1 << 20,
			fragment: 1000,
			read:     4093,
			limits:   []int64{0, 1 << 20, 1<<20 - 1},
		},
		{
			name:     "16 MiB binary in 64 KiB fragments",
			op:       ws.OpBinary,
			size:     16 << 20,
			fragment: 64 << 10,
			read:     100003,
			limits:   []int64{16 << 20},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			payload := testPayload(tc.op, tc.size)
			in, pings := fragmentedStream(tc.op, payload, tc.fragment)
			for _, limit := range tc.limits {
				var r Reader
				h := &countingHandler{want: payload}
				var err error
				for p := in; len(p) > 0 && err == nil; {
					n := min(tc.read, len(p))
					err = r.Feed(p[:n], limit, h)
					p = p[n:]
				}
				if limit == int64(tc.size)-1 {
					if !errors.Is(err, ErrTooLarge) || h.messages != 0 {
						t.Fatalf(
							"limit one under the size: err = %v, %d messages",
							err, h.messages,
						)
					}
					r.Release()
					continue
				}
				if err != nil {
					t.Fatalf(
						"limit %d: %v",
						limit, err,
					)
				}
				if h.messages != 1 || !h.equal || h.pings != pings {
					t.Fatalf(
						"limit %d: %d messages (payload as sent: %v), %d pings; want 1 message and %d pings",
						limit, h.messages, h.equal, h.pings, pings,
					)
				}
				if r.Buffered() != 0 || r.st != nil {
					t.Fatalf(
						"limit %d: reader not idle after the message",
						limit,
					)
				}
				// The input was unmasked in place: mask it again.
				in, _ = fragmentedStream(tc.op, payload, tc.fragment)
			}
		})
	}
}

// testPayload is size bytes of mixed ASCII and multi-byte runes for text,
// of pseudo-random bytes for binary.
func testPayload(op ws.OpCode, size int) []byte {
	p := make([]byte, 0, size)
	if op == ws.OpText {
		for len(p) < size {
			p = append(p, "ascii κόσμε \U0001F600 "...)
		}
		p = p[:size]
		for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
			if utf8.RuneStart(p[i]) {
				if !utf8.FullRune(p[i:]) {
					for j := i; j < len(p); j++ {
						p[j] = '.'
					}
				}
				break
			}
		}
		return p
	}
	// Random bytes in a 4 KiB block, then repeated (a prime-sized period would
	// not matter here: fragments and reads are not multiples of it anyway).
	rng := rand.New(rand.NewPCG(1, 2))
	for len(p) < min(size, 4096) {
		p = append(p, byte(rng.Uint32()))
	}
	for len(p) < size {
		p = append(p, p[:min(len(p), size-len(p))]...)
	}
	return p
}

// fragmentedStream cuts payload into fragments with a ping every 16
// fragments, and reports how many pings it put in.
func fragmentedStream(op ws.OpCode, payload []byte, size int) ([]byte, int) {
	out := make([]byte, 0, len(payload)+len(payload)/size*32+64)
	pings := 0
	for i := 0; len(payload) > 0; i++ {
		n := min(size, len(payload))
		b0 := byte(ws.OpContinuation)
		if i == 0 {
			b0 = byte(op)
		}
		if n == len(payload) {
			b0 |= fin
		}
		out = append(out, encode(b0, true, 0, -1, payload[:n])...)
		payload = payload[n:]
		if i%16 == 0 {
			out = append(out, frame(ws.OpPing, "keepalive")...)
			pings++
		}
	}
	return out, pings
}

// countingHandler counts messages and pings, and checks that the last
// message is want.
type countingHandler struct {
	want     []byte
	messages int
	pings    int
	equal    bool
}

func (h *countingHandler) Message(op ws.OpCode, p []byte) error {
	h.messages++
	h.equal = bytes.Equal(p, h.want)
	return nil
}

func (h *countingHandler) Control(op ws.OpCode, p []byte) error {
	if op == ws.OpPing {
		h.pings++
	}
	return nil
}

func TestReaderFailFastUTF8(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{
			name: "surrogate in the middle of a 1000-byte frame",
			in:   encode(fin|byte(ws.OpText), true, 0, 1000, []byte("abc\xed\xa0")),
		},
		{
			name: "over U+10FFFF across a fragment boundary",
			in: concat(
				fragment(ws.OpText, "abc\xf4"),
				encode(byte(ws.OpContinuation), true, 0, 1000, []byte("\x90")),
			),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Reader
			defer r.Release()
			err := r.Feed(tc.in, 0, &recorder{})
			if !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf(
					"Feed = %v before the frame ends; want %v",
					err, ErrInvalidUTF8,
				)
			}
		})
	}
}

func TestReaderStickyErrors(t *testing.T) {
	t.Run("protocol error", func(t *testing.T) {
		var r Reader
		h := &recorder{}
		err := r.Feed(frame(ws.OpContinuation, "x"), 0, h)
		var fe *Error
		if !errors.As(err, &fe) || fe.Code != ws.StatusProtocolError || !errors.Is(err, ErrProtocol) {
			t.Fatalf(
				"Feed = %v, want a 1002 *Error",
				err,
			)
		}
		if again := r.Feed(frame(ws.OpText, "ok"), 0, h); again != err || len(h.events) != 0 {
			t.Fatalf(
				"second Feed = %v with events %v, want the same error and no events",
				again, h.events,
			)
		}
		if r.Partial() || r.Buffered() != 0 {
			t.Fatalf(
				"after an error Partial() = %v, Buffered() = %d",
				r.Partial(), r.Buffered(),
			)
		}
		r.Release()
		if err := r.Feed(frame(ws.OpText, "ok"), 0, h); err != nil || len(h.events) != 1 {
			t.Fatalf(
				"after Release: Feed = %v, events %v",
				err, h.events,
			)
		}
	})
	t.Run("handler error", func(t *testing.T) {
		in := concat(fragment(ws.OpText, "a"), frame(ws.OpPing, ""), frame(ws.OpContinuation, "b"), frame(ws.OpText, "c"))
		for failAt := 1; failAt <= 3; failAt++ {
			var r Reader
			h := &recorder{failAt: failAt}
			if err := r.Feed(slicesClone(in), 0, h); err != errStop {
				t.Fatalf(
					"failAt %d: Feed = %v, want the handler's error as is",
					failAt, err,
				)
			}
			if len(h.events) != failAt || r.Feed(frame(ws.OpText, "d"), 0, h) != errStop {
				t.Fatalf(
					"failAt %d: events %v, the error must stop Feed and stick",
					failAt, h.events,
				)
			}
			r.Release()
			whole := run(in, nil, 0, failAt)
			checkSplits(t, in, 0, failAt, whole)
		}
	})
}

func TestReaderFastPathAllocs(t *testing.T) {
	var r Reader
	h := &recorder{}
	in := concat(frame(ws.OpBinary, "hello"), frame(ws.OpPing, ""))
	if n := testing.AllocsPerRun(100, func() {
		h.events = h.events[:0]
		if err := r.Feed(in, 0, discard{}); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf(
			"%v allocations per Feed of complete frames, want 0",
			n,
		)
	}
}

type discard struct{}

func (discard) Message(ws.OpCode, []byte) error { return nil }
func (discard) Control(ws.OpCode, []byte) error { return nil }

// TestRoundTrip sends frames written by AppendFrame and AppendClose, masked
// as a client would, through the Reader.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var in []byte
	var want []event
	for _, size := range []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 70000} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpPing, ws.OpPong} {
			if op.IsControl() && size > 125 {
				continue
			}
			payload := testPayload(op, size)
			if op != ws.OpText {
				for i := range payload {
					payload[i] = byte(rng.Uint32())
				}
			}
			in = append(in, maskServerFrame(AppendFrame(nil, op, payload))...)
			want = append(want, msg(op, string(payload)))
		}
	}
	for _, c := range []struct {
		code   ws.StatusCode
		reason string
		body   string
	}{
		{
			code: 0,
			body: "",
		},
		{
			code:   ws.StatusNormalClosure,
			reason: "bye",
			body:   closeBody(1000, "bye"),
		},
		{
			code:   ws.StatusGoingAway,
			reason: strings.Repeat("é", 100),
			body:   closeBody(1001, strings.Repeat("é", 61)),
		},
	} {
		in = append(in, maskServerFrame(AppendClose(nil, c.code, c.reason))...)
		want = append(want, msg(ws.OpClose, c.body))
	}
	whole := run(in, nil, 0, 0)
	if whole.err != "" || !eventsEqual(whole.events, want) {
		t.Fatalf(
			"got %v\nwant %v",
			whole, want,
		)
	}
	rng2 := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		if got := run(in, randomCuts(rng2, len(in)), 0, 0); !got.equal(whole) {
			t.Fatalf(
				"random cuts changed the outcome: %v",
				got,
			)
		}
	}
}

func TestAppendClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   ws.StatusCode
		reason string
		want   []byte
	}{
		{
			name: "5.5.1 no status code: empty body",
			code: 0,
			want: []byte{0x88, 0x00},
		},
		{
			name:   "5.5.1 code without reason",
			code:   ws.StatusProtocolError,
			reason: "",
			want:   []byte{0x88, 0x02, 0x03, 0xea},
		},
		{
			name:   "5.5.1 code and reason",
			code:   ws.StatusMessageTooBig,
			reason: "big",
			want:   []byte{0x88, 0x05, 0x03, 0xf1, 'b', 'i', 'g'},
		},
		{
			name:   "5.5 reason cut to 123 bytes",
			code:   ws.StatusNormalClosure,
			reason: strings.Repeat("z", 200),
			want:   concat([]byte{0x88, 125, 0x03, 0xe8}, bytes.Repeat([]byte("z"), 123)),
		},
		{
			name:   "5.5 reason cut at a rune boundary",
			code:   ws.StatusNormalClosure,
			reason: strings.Repeat("z", 122) + "é",
			want:   concat([]byte{0x88, 124, 0x03, 0xe8}, bytes.Repeat([]byte("z"), 122)),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AppendClose(nil, tc.code, tc.reason); !bytes.Equal(got, tc.want) {
				t.Fatalf(
					"AppendClose = % x\nwant % x",
					got, tc.want,
				)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		is   error
		text string
	}{
		{
			err:  &Error{Code: ws.StatusProtocolError, Reason: "unmasked client frame"},
			is:   ErrProtocol,
			text: "frame: protocol error (1002): unmasked client frame",
		},
		{
			err:  &Error{Code: ws.StatusInvalidFramePayloadData, Reason: "x"},
			is:   ErrInvalidUTF8,
			text: "frame: invalid UTF-8 text (1007): x",
		},
		{
			err:  &Error{Code: ws.StatusMessageTooBig, Reason: "y"},
			is:   ErrTooLarge,
			text: "frame: message too large (1009): y",
		},
		{
			err:  &Error{Code: ws.StatusPolicyViolation, Reason: "z"},
			is:   nil,
			text: "frame: protocol violation (1008): z",
		},
	} {
		if got := tc.err.Error(); got != tc.text {
			t.Errorf(
				"Error() = %q, want %q",
				got, tc.text,
			)
		}
		for _, s := range []error{ErrProtocol, ErrInvalidUTF8, ErrTooLarge} {
			if errors.Is(tc.err, s) != (s == tc.is) {
				t.Errorf(
					"errors.Is(%v, %v) = %v",
					tc.err, s, !(s == tc.is),
				)
			}
		}
	}
}

// TestCipherOffset pins down what the reader relies on in ws.Cipher:
// unmasking a payload in pieces, each with the offset of its first byte,
// is the same as unmasking it whole.
func TestCipherOffset(t *testing.T) {
	mask := [4]byte{1, 2, 4, 8}
	for n := range 70 {
		for off := range 9 {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(i * 7)
			}
			want := bytes.Clone(p)
			for i := range want {
				want[i] ^= mask[(off+i)%4]
			}
			ws.Cipher(p, mask, off)
			if !bytes.Equal(p, want) {
				t.Fatalf(
					"Cipher(len %d, offset %d) = % x, want % x",
					n, off, p, want,
				)
			}
		}
	}
}

func slicesClone(p []byte) []byte { return bytes.Clone(p) }

func TestReaderBufferedControl(t *testing.T) {
	var r Reader
	defer r.Release()
	in := concat(fragment(ws.OpBinary, "abc"), frame(ws.OpPing, "0123456789"))
	if err := r.Feed(in[:len(in)-4], 0, &recorder{}); err != nil {
		t.Fatal(err)
	}
	// 3 bytes of message and 6 bytes of the ping payload.
	if got := r.Buffered(); got != 9 {
		t.Fatalf(
			"Buffered() = %d, want 9",
			got,
		)
	}
}

func TestBufferPool(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want int
	}{
		{
			n:    0,
			want: minBuf,
		},
		{
			n:    minBuf,
			want: minBuf,
		},
		{
			n:    minBuf + 1,
			want: 2 * minBuf,
		},
		{
			n:    16 << 20,
			want: 16 << 20,
		},
		{
			n:    16<<20 + 1,
			want: 16<<20 + 1,
		},
	} {
		b := getBuf(tc.n)
		if len(*b) != 0 || cap(*b) != tc.want {
			t.Errorf(
				"getBuf(%d): len %d cap %d, want 0 and %d",
				tc.n, len(*b), cap(*b), tc.want,
			)
		}
		putBuf(b)
	}
	odd := make([]byte, 3, 1000)
	putBuf(&odd) // not a pool size: dropped
	if len(odd) != 3 {
		t.Errorf(
			"putBuf changed a buffer it does not keep",
		)
	}
}

func TestPutHeaderPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("PutHeader with a negative length did not panic")
		}
	}()
	PutHeader(make([]byte, MaxHeaderSize), ws.OpBinary, -1)
}
