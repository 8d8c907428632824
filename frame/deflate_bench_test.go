package frame

import (
	"bytes"
	"fmt"
	"testing"
)

// quotes2K is a 2 KiB JSON message of the kind a fan-out publishes: a list of quotes
// (the one frame/flatebench compares flate implementations on).
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

// BenchmarkDeflate measures what compressing and inflating one 2 KiB JSON message costs
// livepoll: pooled compressor and decompressor, no allocation. outB is the compressed size.
//
//	go test -run '^$' -bench Deflate -count 3 -benchtime 20000x ./frame
func BenchmarkDeflate(b *testing.B) {
	p := quotes2K()
	z := deflated(p)
	b.Run("compress", func(b *testing.B) {
		dst := make([]byte, 0, len(p))
		b.ReportAllocs()
		b.SetBytes(int64(len(p)))
		var out []byte
		for b.Loop() {
			out, _ = Deflate(dst, p)
		}
		b.ReportMetric(float64(len(out)), "outB")
	})
	b.Run("inflate", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			out, _ := inflate(z, 0)
			putBuf(out)
		}
	})
}
