package main

import (
	"bytes"
	"compress/flate"
	"testing"
)

// TestInflaterTellsCompressedFromPlain: a delivered JSON envelope is passed through, a
// flushed deflate stream of one (what every compressing server sends) is inflated.
func TestInflaterTellsCompressedFromPlain(t *testing.T) {
	var z inflater
	msg := []byte(`{"topic":"fan","data":{"seq":7,"ts":1234567890123456789,"pad":"` + string(compressiblePad(1500)) + `"}}`)
	got, compressed, err := z.message(msg)
	if err != nil || compressed || !bytes.Equal(got, msg) {
		t.Fatalf("plain message: compressed %v, err %v", compressed, err)
	}
	for _, level := range []int{flate.BestSpeed, flate.DefaultCompression, flate.HuffmanOnly} {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, level)
		w.Write(msg)
		w.Flush()
		wire := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
		if wire[0]&1 != 0 {
			t.Fatalf("level %d: a flushed stream starts with a final block", level)
		}
		for range 2 { // the reader is reused
			got, compressed, err := z.message(wire)
			if err != nil || !compressed || !bytes.Equal(got, msg) {
				t.Fatalf("level %d: compressed %v, err %v, %d bytes", level, compressed, err, len(got))
			}
		}
	}
}
