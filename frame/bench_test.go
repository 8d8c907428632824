package frame

import (
	"fmt"
	"testing"

	"github.com/gobwas/ws"
)

var benchSizes = []struct {
	name string
	size int
}{
	{
		name: "16B",
		size: 16,
	},
	{
		name: "1KiB",
		size: 1 << 10,
	},
	{
		name: "64KiB",
		size: 64 << 10,
	},
}

// benchFrame is a final client frame with an all-zero masking key: Feed
// unmasks in place, and with this key the same bytes can be fed again and
// again while Cipher still does all its work.
func benchFrame(op ws.OpCode, size int) []byte {
	f := maskServerFrame(AppendFrame(nil, op, testPayload(op, size)))
	hl := len(f) - size
	clear(f[hl-4 : hl])
	copy(f[hl:], testPayload(op, size))
	return f
}

// BenchmarkFeedComplete measures the fast path: whole frames in the fed
// bytes, unmasked in place and handed over without a copy.
func BenchmarkFeedComplete(b *testing.B) {
	for _, op := range []ws.OpCode{ws.OpBinary, ws.OpText} {
		for _, bs := range benchSizes {
			in := benchFrame(op, bs.size)
			b.Run(fmt.Sprintf("%s-%s", opName(op), bs.name), func(b *testing.B) {
				var r Reader
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					if err := r.Feed(in, 0, discard{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkFeedPartial measures the buffered path: each frame arrives in
// reads of at most 4 KiB, or in two halves for smaller frames, so its payload
// is copied into a pooled buffer before it is handed over.
func BenchmarkFeedPartial(b *testing.B) {
	for _, op := range []ws.OpCode{ws.OpBinary, ws.OpText} {
		for _, bs := range benchSizes {
			in := benchFrame(op, bs.size)
			read := min(4096, len(in)/2)
			b.Run(fmt.Sprintf("%s-%s", opName(op), bs.name), func(b *testing.B) {
				var r Reader
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					for p := in; len(p) > 0; {
						n := min(read, len(p))
						if err := r.Feed(p[:n], 0, discard{}); err != nil {
							b.Fatal(err)
						}
						p = p[n:]
					}
				}
			})
		}
	}
}

// BenchmarkFeedFragmented measures reassembly: a 64 KiB message in 16
// fragments, fed whole.
func BenchmarkFeedFragmented(b *testing.B) {
	const size, parts = 64 << 10, 16
	payload := testPayload(ws.OpBinary, size)
	var in []byte
	for i := range parts {
		b0 := byte(ws.OpContinuation)
		if i == 0 {
			b0 = byte(ws.OpBinary)
		}
		if i == parts-1 {
			b0 |= fin
		}
		f := encode(b0, true, 0, -1, payload[i*size/parts:(i+1)*size/parts])
		hl := len(f) - size/parts
		clear(f[hl-4 : hl])
		copy(f[hl:], payload[i*size/parts:(i+1)*size/parts])
		in = append(in, f...)
	}
	var r Reader
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Feed(in, 0, discard{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, bs := range benchSizes {
		payload := testPayload(ws.OpBinary, bs.size)
		dst := make([]byte, 0, MaxHeaderSize+bs.size)
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendFrame(dst[:0], ws.OpBinary, payload)
			}
		})
	}
}

func opName(op ws.OpCode) string {
	if op == ws.OpText {
		return "text"
	}
	return "binary"
}
