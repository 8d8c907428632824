// Package flatebench compares the standard library's flate with klauspost/compress's on
// the message livepoll compresses most: a 2 KiB JSON message published to a topic. It is a
// module of its own so that the comparison never makes klauspost/compress a dependency of
// livepoll. docs/compression.md records the numbers.
//
//	cd frame/flatebench && go test -run '^$' -bench . -count 3 -benchtime 20000x
package flatebench

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"testing"

	kpflate "github.com/klauspost/compress/flate"
)

// quotes2K is a 2 KiB JSON message of the kind a fan-out publishes: a list of quotes.
// frame's BenchmarkDeflate uses the same one.
func quotes2K() []byte {
	var b bytes.Buffer
	b.WriteString(`{"topic":"prices","data":[`)
	for i := 0; b.Len() < 2000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"symbol":"SYM%03d","bid":%d.%02d,"ask":%d.%02d,"ts":17000%05d}`,
			i, i*7%1000, 100+i*13%50, i*31%100, 101+i*13%50, i*17%100, i*977%100000)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

type flateWriter interface {
	io.Writer
	Flush() error
	Reset(io.Writer)
}

// tail is what RFC 7692 has the receiver append, plus an empty final block.
const tail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// BenchmarkCompress compresses one message with no context takeover (reset, write,
// flush), at levels 1 and 6. outB is the compressed size without the 4-byte tail.
func BenchmarkCompress(b *testing.B) {
	p := quotes2K()
	writers := []struct {
		name string
		new  func() flateWriter
	}{
		{"std-1", func() flateWriter { w, _ := stdflate.NewWriter(nil, 1); return w }},
		{"std-6", func() flateWriter { w, _ := stdflate.NewWriter(nil, 6); return w }},
		{"klauspost-1", func() flateWriter { w, _ := kpflate.NewWriter(nil, 1); return w }},
		{"klauspost-6", func() flateWriter { w, _ := kpflate.NewWriter(nil, 6); return w }},
	}
	for _, wr := range writers {
		b.Run(wr.name, func(b *testing.B) {
			w := wr.new()
			var out bytes.Buffer
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				out.Reset()
				w.Reset(&out)
				w.Write(p)
				w.Flush()
			}
			b.ReportMetric(float64(out.Len()-4), "outB")
		})
	}
}

// BenchmarkInflate inflates that message, compressed at level 1.
func BenchmarkInflate(b *testing.B) {
	p := quotes2K()
	var z bytes.Buffer
	w, _ := stdflate.NewWriter(&z, 1)
	w.Write(p)
	w.Flush()
	in := append(z.Bytes()[:z.Len()-4:z.Len()-4], tail...)
	readers := []struct {
		name string
		r    io.ReadCloser
	}{
		{"std", stdflate.NewReader(nil)},
		{"klauspost", kpflate.NewReader(nil)},
	}
	for _, rd := range readers {
		b.Run(rd.name, func(b *testing.B) {
			out := make([]byte, 4096)
			src := bytes.NewReader(in)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				src.Reset(in)
				rd.r.(kpflate.Resetter).Reset(src, nil)
				n, _ := io.ReadFull(rd.r, out)
				if n != len(p) {
					b.Fatalf("inflated %d bytes", n)
				}
			}
		})
	}
}
