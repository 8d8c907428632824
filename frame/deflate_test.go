package frame

import (
	"bytes"
	stdflate "compress/flate"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// deflated compresses p the way a client does (RFC 7692 7.2.1), with room for anything.
func deflated(p []byte) []byte {
	out, ok := Deflate(make([]byte, 0, 2*len(p)+64), p)
	if !ok {
		panic("Deflate refused a buffer twice the input")
	}
	return out
}

// finalDeflated compresses p into a deflate stream that ends with a final block, as
// some clients send: RFC 7692 7.2.3.4 allows any deflate blocks, final or not.
func finalDeflated(p []byte) []byte {
	var b bytes.Buffer
	w, _ := stdflate.NewWriter(&b, stdflate.BestCompression)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

// compressedFrame is a final masked client frame with RSV1 set.
func compressedFrame(op ws.OpCode, payload []byte) []byte {
	return encode(fin|rsv1|byte(op), true, 0, -1, payload)
}

func jsonish(n int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(`{"id":`)
		b.WriteString(strings.Repeat("7", i%5+1))
		b.WriteString(`,"name":"livepoll","ok":true},`)
	}
	return []byte(b.String()[:n])
}

// deflateCases read like RFC 7692 sections 6 and 7.2 for a connection that negotiated
// permessage-deflate (no context takeover).
func deflateCases() []readCase {
	big := jsonish(70000)
	z := deflated(big)
	zeros := deflated(make([]byte, 1<<20))
	return []readCase{
		{
			name: "7.2.1 compressed text message in one frame",
			in:   compressedFrame(ws.OpText, deflated([]byte("Hello, Hello, Hello"))),
			want: []event{msg(ws.OpText, "Hello, Hello, Hello")},
		},
		{
			name: "7.2.3.1 the RFC's compressed Hello",
			in:   compressedFrame(ws.OpText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}),
			want: []event{msg(ws.OpText, "Hello")},
		},
		{
			name: "an empty message compressed to a single 0x00 octet",
			in:   compressedFrame(ws.OpBinary, []byte{0x00}),
			want: []event{msg(ws.OpBinary, "")},
		},
		{
			name: "7.2.3.4 a DEFLATE block with BFINAL set",
			in:   compressedFrame(ws.OpText, finalDeflated([]byte("final block"))),
			want: []event{msg(ws.OpText, "final block")},
		},
		{
			name: "messages are inflated independently (no context takeover)",
			in: concat(compressedFrame(ws.OpText, deflated([]byte("same same"))),
				frame(ws.OpText, "plain"),
				compressedFrame(ws.OpBinary, deflated([]byte("same same")))),
			want: []event{msg(ws.OpText, "same same"), msg(ws.OpText, "plain"), msg(ws.OpBinary, "same same")},
		},
		{
			name: "6.1 compressed message in fragments, RSV1 on the first, pings between",
			in: concat(encode(rsv1|byte(ws.OpText), true, 0, -1, z[:10]),
				frame(ws.OpPing, "a"),
				fragment(ws.OpContinuation, string(z[10:len(z)/2])),
				frame(ws.OpPong, "b"),
				frame(ws.OpContinuation, string(z[len(z)/2:]))),
			want: []event{msg(ws.OpPing, "a"), msg(ws.OpPong, "b"), msg(ws.OpText, string(big))},
		},
		{
			name: "6 RSV1 on a continuation frame",
			in:   concat(fragment(ws.OpText, "a"), encode(fin|rsv1|byte(ws.OpContinuation), true, 0, -1, []byte("b"))),
			code: ws.StatusProtocolError,
		},
		{
			name: "6 RSV1 on a continuation frame of a compressed message",
			in:   concat(encode(rsv1|byte(ws.OpText), true, 0, -1, z[:10]), encode(fin|rsv1|byte(ws.OpContinuation), true, 0, -1, z[10:])),
			code: ws.StatusProtocolError,
		},
		{
			name: "6 RSV1 on a ping",
			in:   encode(fin|rsv1|byte(ws.OpPing), true, 0, -1, []byte("p")),
			code: ws.StatusProtocolError,
		},
		{
			name: "6 RSV1 on a close",
			in:   encode(fin|rsv1|byte(ws.OpClose), true, 0, -1, nil),
			code: ws.StatusProtocolError,
		},
		{
			name: "6 RSV2 stays reserved",
			in:   encode(fin|rsv2|byte(ws.OpText), true, 0, -1, []byte("x")),
			code: ws.StatusProtocolError,
		},
		{
			name: "6 RSV1 and RSV3",
			in:   encode(fin|rsv1|rsv3|byte(ws.OpText), true, 0, -1, deflated([]byte("x"))),
			code: ws.StatusProtocolError,
		},
		{
			name: "6.2 invalid compressed data",
			in:   compressedFrame(ws.OpBinary, []byte{0xff, 0xff, 0xff, 0xff}),
			code: ws.StatusProtocolError,
		},
		{
			name: "6.2 invalid UTF-8 once inflated",
			in:   compressedFrame(ws.OpText, deflated([]byte("ok \xff"))),
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "6.2 valid UTF-8 split anywhere in the compressed bytes",
			in:   compressedFrame(ws.OpText, deflated([]byte("κόσμε κόσμε κόσμε"))),
			want: []event{msg(ws.OpText, "κόσμε κόσμε κόσμε")},
		},
		{
			name:  "read limit applies to the inflated size",
			in:    compressedFrame(ws.OpBinary, zeros),
			limit: 64 << 10,
			code:  ws.StatusMessageTooBig,
		},
		{
			name:  "a message of exactly the read limit once inflated",
			in:    compressedFrame(ws.OpBinary, deflated(make([]byte, 4096))),
			limit: 4096,
			want:  []event{msg(ws.OpBinary, string(make([]byte, 4096)))},
		},
	}
}

func TestReaderDeflate(t *testing.T) {
	for _, tc := range deflateCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			whole := runWith(tc.in, nil, tc.limit, 0, true)
			if !eventsEqual(whole.events, tc.want) || whole.code != tc.code || whole.partial != tc.partial {
				t.Fatalf("got %v code=%d\nwant events=%v code=%d", whole, whole.code, tc.want, tc.code)
			}
			if tc.code == 0 && whole.err != "" {
				t.Fatalf("unexpected error %s", whole.err)
			}
			rng := rand.New(rand.NewPCG(uint64(len(tc.in)), 2))
			for range 8 {
				cuts := randomCuts(rng, len(tc.in))
				if got := runWith(tc.in, cuts, tc.limit, 0, true); !got.equal(whole) {
					t.Fatalf("cut at %v:\ngot  %v\nwant %v", cuts, got, whole)
				}
			}
			if len(tc.in) <= 4096 {
				every := make([]int, 0, len(tc.in))
				for c := 1; c < len(tc.in); c++ {
					every = append(every, c)
				}
				if got := runWith(tc.in, every, tc.limit, 0, true); !got.equal(whole) {
					t.Fatalf("byte by byte:\ngot  %v\nwant %v", got, whole)
				}
			}
			if paused := runPausingWith(tc.in, tc.limit, 0, true); !paused.equal(whole) {
				t.Fatalf("pausing after every frame:\ngot  %v\nwant %v", paused, whole)
			}
		})
	}
}

// TestReaderCompressedWithoutNegotiation: every compressed frame is a protocol error on a
// connection that did not negotiate permessage-deflate, whatever the handler type.
func TestReaderCompressedWithoutNegotiation(t *testing.T) {
	in := compressedFrame(ws.OpText, deflated([]byte("Hello")))
	if o := runWith(in, nil, 0, 0, false); o.code != ws.StatusProtocolError || len(o.events) != 0 {
		t.Fatalf("recorder without deflate: %v", o)
	}
	var r Reader
	defer r.Release()
	err := r.Feed(bytes.Clone(in), 0, discard{})
	if fe, ok := err.(*Error); !ok || fe.Code != ws.StatusProtocolError || fe.Reason != reasonRsv {
		t.Fatalf("handler without Deflate: %v", err)
	}
}

// TestInflateBomb: a message that inflates to far more than the limit costs about the
// limit in memory, not its inflated size.
func TestInflateBomb(t *testing.T) {
	const limit = 1 << 20
	bomb := deflated(make([]byte, 256<<20)) // 256 MiB of zeros in about 256 KiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := inflate(bomb, limit)
	runtime.ReadMemStats(&after)
	if out != nil || err == nil || err.Code != ws.StatusMessageTooBig {
		t.Fatalf("inflate = %v, %v; want 1009", out, err)
	}
	// The output grows by doubling up to limit+1: under 4×limit in all, plus the
	// decompressor if the pool had none.
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*limit+1<<20 {
		t.Fatalf("inflating the bomb allocated %d bytes; limit %d", got, limit)
	}
}

// TestInflateHugeLimits: a limit at or near the largest int64 ("no limit" written as
// math.MaxInt64) neither overflows nor panics, and bounds the compressed size sensibly.
func TestInflateHugeLimits(t *testing.T) {
	p := jsonish(5000)
	z := deflated(p)
	for _, limit := range []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 / 2, 1 << 62} {
		out, err := inflate(z, limit)
		if err != nil || !bytes.Equal(*out, p) {
			t.Fatalf("limit %d: %v", limit, err)
		}
		putBuf(out)
		if c := compressedLimit(limit); c < limit {
			t.Fatalf("compressedLimit(%d) = %d, below the limit", limit, c)
		}
	}
}

// TestDeflateInterop: what Deflate writes, with the tail put back, is a deflate stream
// the standard library inflates to the input; no output ends with the removed tail.
func TestDeflateInterop(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	random := make([]byte, 3000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	for _, p := range [][]byte{nil, []byte("a"), jsonish(2048), jsonish(200000), random} {
		out := deflated(p)
		if bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
			t.Errorf("%d bytes: output keeps the 0x00 0x00 0xff 0xff tail", len(p))
		}
		got, err := io.ReadAll(stdflate.NewReader(io.MultiReader(bytes.NewReader(out), strings.NewReader(deflateTail))))
		if err != nil || !bytes.Equal(got, p) {
			t.Errorf("%d bytes: inflated %d bytes, %v", len(p), len(got), err)
		}
	}
}

// TestDeflateOnlyWhenSmaller: with room for the input only, Deflate succeeds for
// compressible data and gives up, leaving dst as it was, for incompressible data.
func TestDeflateOnlyWhenSmaller(t *testing.T) {
	p := jsonish(2048)
	dst := make([]byte, 3, 3+len(p))
	out, ok := Deflate(dst, p)
	if !ok || len(out) >= 3+len(p) || len(out) <= 3 {
		t.Fatalf("JSON: ok=%v, %d bytes", ok, len(out)-3)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 2048)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	if out, ok := Deflate(dst, random); ok || len(out) != 3 {
		t.Fatalf("random bytes: ok=%v, %d bytes", ok, len(out))
	}
}

func TestPutDeflatedHeader(t *testing.T) {
	var b [MaxHeaderSize]byte
	n := PutDeflatedHeader(b[:], ws.OpText, 300)
	if n != 4 || b[0] != 0xc1 || b[1] != 126 {
		t.Fatalf("header % x", b[:n])
	}
}

// FuzzReaderDeflate is FuzzReader on a connection that negotiated permessage-deflate:
// never a panic, the same outcome however the input is cut, and no inflated message
// over the limit.
func FuzzReaderDeflate(f *testing.F) {
	for i, tc := range deflateCases() {
		if len(tc.in) > 4096 {
			continue
		}
		f.Add(tc.in, uint64(i), uint32(tc.limit))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, limit uint32) {
		limit = limit%(1<<20) + 1 // no limit would let a bomb exhaust the fuzzer's memory
		whole := runWith(in, nil, int64(limit), 0, true)
		for _, e := range whole.events {
			if !e.op.IsControl() && len(e.payload) > int(limit) {
				t.Fatalf("message of %d bytes over the limit %d", len(e.payload), limit)
			}
		}
		rng := rand.New(rand.NewPCG(seed, uint64(len(in))))
		for range 4 {
			cuts := randomCuts(rng, len(in))
			if got := runWith(in, cuts, int64(limit), 0, true); !got.equal(whole) {
				t.Fatalf("cut at %v:\ngot  %v\nwant %v", cuts, got, whole)
			}
		}
	})
}

// FuzzInflate: any bytes as a compressed payload either inflate within the limit, or
// fail with 1002 or 1009; whatever Deflate writes inflates back to its input.
func FuzzInflate(f *testing.F) {
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, uint32(0))
	f.Add(deflated(jsonish(500)), uint32(100))
	f.Add(deflated(make([]byte, 100000)), uint32(1000))
	f.Add([]byte{0xff}, uint32(0))
	f.Fuzz(func(t *testing.T, p []byte, limit uint32) {
		limit = limit%(1<<20) + 1 // no limit would let a bomb exhaust the fuzzer's memory
		out, err := inflate(p, int64(limit))
		switch {
		case err != nil && err.Code != ws.StatusProtocolError && err.Code != ws.StatusMessageTooBig:
			t.Fatalf("code %d", err.Code)
		case err == nil && len(*out) > int(limit):
			t.Fatalf("%d bytes inflated, limit %d", len(*out), limit)
		case err == nil:
			putBuf(out)
		}
		back, err := inflate(deflated(p), 0)
		if err != nil || !bytes.Equal(*back, p) {
			t.Fatalf("round trip of %d bytes: %v", len(p), err)
		}
		putBuf(back)
	})
}
