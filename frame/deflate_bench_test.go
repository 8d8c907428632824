package frame

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"testing"

	kpflate "github.com/klauspost/compress/flate"
)

// quotes2K is a 2 KiB JSON message of the kind a fan-out publishes: a list of quotes.
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

// BenchmarkDeflate compares the standard library's flate with klauspost/compress's at
// the levels that matter for one message with no context takeover, compressing and
// inflating a 2 KiB JSON message: the choice in deflate.go. outB is the compressed size.
//
//	go test -run '^$' -bench Deflate -count 6 ./frame
func BenchmarkDeflate(b *testing.B) {
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
		b.Run("compress/"+wr.name, func(b *testing.B) {
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
	z := deflated(p)
	readers := []struct {
		name string
		r    io.ReadCloser
	}{
		{"std", stdflate.NewReader(nil)},
		{"klauspost", kpflate.NewReader(nil)},
	}
	for _, rd := range readers {
		b.Run("inflate/"+rd.name, func(b *testing.B) {
			out := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				src := tailReader{p: z}
				rd.r.(kpflate.Resetter).Reset(&src, nil)
				n, _ := io.ReadFull(rd.r, out[:cap(out)])
				if n != len(p) {
					b.Fatalf("inflated %d bytes", n)
				}
			}
		})
	}
	b.Run("frame.Deflate", func(b *testing.B) {
		dst := make([]byte, 0, len(p))
		b.ReportAllocs()
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			Deflate(dst, p)
		}
	})
	b.Run("frame.inflate", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			out, _ := inflate(z, 0)
			putBuf(out)
		}
	})
}
