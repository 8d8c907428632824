package conformance

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
)

// Sections 12 and 13: permessage-deflate. Each case sends compressed messages, one after
// the echo of the previous, and wants every echo back as sent (compressed or not: the
// server chooses; a compressed echo must fit the window the server answered with).
//
// Autobahn's message sizes and fragment sizes are kept; its counts are scaled down from
// 1000 messages per case to about 64 KiB of payload per case (at least 2 messages, at
// most 100), and its five test files, which are not ours to copy, are replaced by
// generated data of the same kinds and sizes. The client compresses with the standard
// library's flate, not with the one livepoll uses, and inflates what the server sends
// with it too.

// deflateSizes is Autobahn's table: payload size and auto-fragment size (0: one frame).
var deflateSizes = []struct{ n, frag int }{
	{16, 0}, {64, 0}, {256, 0}, {1024, 0}, {4096, 0}, {8192, 0}, {16384, 0}, {32768, 0}, {65536, 0}, {131072, 0},
	{8192, 256}, {16384, 256}, {32768, 256}, {65536, 256}, {131072, 256}, {131072, 1024}, {131072, 4096}, {131072, 32768},
}

// deflateCount is how many messages a case sends: about 64 KiB of payload in all.
func deflateCount(n int) int { return min(100, max(2, (64<<10)/n)) }

// The answer livepoll gives to every accepted offer.
const deflateAnswer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// autobahnOffer spells an offer as Autobahn's client does: it always accepts a
// client_max_window_bits and client_no_context_takeover answer, and may request
// server_max_window_bits and server_no_context_takeover.
func autobahnOffer(serverNoContext bool, serverBits int) string {
	s := "permessage-deflate; client_max_window_bits; client_no_context_takeover"
	if serverBits != 0 {
		s += fmt.Sprintf("; server_max_window_bits=%d", serverBits)
	}
	if serverNoContext {
		s += "; server_no_context_takeover"
	}
	return s
}

type testData struct {
	desc string
	op   byte
	data func() []byte
}

// Generated stand-ins for Autobahn's test files, in its order and of about its sizes.
var deflateData = []testData{
	{"large JSON data (utf8, 194056 bytes)", opText, onceData(genJSON)},
	{"bitmap 512x512 grey (binary, 263222 bytes)", opBinary, onceData(genBitmap)},
	{"human readable German text (binary, 222218 bytes)", opBinary, onceData(genText)},
	{"large HTML (utf8, 263527 bytes)", opText, onceData(genHTML)},
	{"a larger PDF-like file (binary, 1042328 bytes)", opBinary, onceData(genPDF)},
}

func onceData(gen func(*rand.Rand) []byte) func() []byte {
	return sync.OnceValue(func() []byte { return gen(rand.New(rand.NewPCG(12, 13))) })
}

func fill(b *bytes.Buffer, size int, piece func()) []byte {
	for b.Len() < size {
		piece()
	}
	return b.Bytes()[:size]
}

func genJSON(rng *rand.Rand) []byte {
	var b bytes.Buffer
	b.WriteString(`[`)
	names := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}
	out := fill(&b, 194056-1, func() {
		fmt.Fprintf(&b, `{"id":%d,"name":"%s-%d","score":%.4f,"tags":["%s","%s"],"active":%v,"geo":{"lat":%.5f,"lon":%.5f}},`,
			rng.IntN(1e6), names[rng.IntN(len(names))], rng.IntN(100), rng.Float64()*100,
			names[rng.IntN(len(names))], names[rng.IntN(len(names))], rng.IntN(2) == 0,
			rng.Float64()*180-90, rng.Float64()*360-180)
	})
	return append(out, ']')
}

func genBitmap(rng *rand.Rand) []byte {
	const w, h, header = 512, 512, 54 + 1024
	b := make([]byte, header, header+w*h)
	copy(b, "BM")
	for i := 54; i < header; i += 4 {
		g := byte((i - 54) / 4)
		b[i], b[i+1], b[i+2] = g, g, g
	}
	for y := range h {
		for x := range w {
			v := (x*x/512+y*3)/4 + rng.IntN(24)
			b = append(b, byte(v))
		}
	}
	return b[:263222-header+header]
}

func genText(rng *rand.Rand) []byte {
	words := strings.Fields("Habe nun ach Philosophie Juristerei und Medizin leider auch Theologie durchaus studiert " +
		"mit heißem Bemühn da steh ich nun ich armer Tor und bin so klug als wie zuvor heiße Magister " +
		"Doktor gar ziehe schon an die zehen Jahr herauf herab und quer und krumm meine Schüler an der Nase herum " +
		"Größe Übermut Ärger Öl süß schön über für")
	var b bytes.Buffer
	return fill(&b, 222218, func() {
		for i := rng.IntN(9) + 3; i > 0; i-- {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString(",.!?;"[rng.IntN(5):][:1] + "\n")
	})
}

func genHTML(rng *rand.Rand) []byte {
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html><html><head><title>data</title></head><body><table>\n")
	return fill(&b, 263527, func() {
		fmt.Fprintf(&b, "<tr class=\"row-%d\"><td><a href=\"/item/%d\">Item %d</a></td><td>%.2f</td><td>%s</td></tr>\n",
			rng.IntN(2), rng.IntN(1e5), rng.IntN(1e5), rng.Float64()*1000, strings.Repeat("x", rng.IntN(12)))
	})
}

func genPDF(rng *rand.Rand) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	return fill(&b, 1042328, func() {
		n := rng.IntN(64)
		fmt.Fprintf(&b, "%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n", rng.IntN(1000), 512)
		for range 512 { // already compressed content: incompressible
			b.WriteByte(byte(rng.Uint32()))
		}
		fmt.Fprintf(&b, "\nendstream\nendobj\nBT /F1 12 Tf %d %d Td (Page text %d) Tj ET\n", n, n*2, n)
	})
}

// messages cuts count messages of n bytes out of data, one after the other, wrapping
// around, as Autobahn does.
func messages(data []byte, n, count int) [][]byte {
	out := make([][]byte, count)
	at := 0
	for i := range out {
		m := make([]byte, 0, n)
		for len(m) < n {
			k := min(n-len(m), len(data)-at)
			m = append(m, data[at:at+k]...)
			at = (at + k) % len(data)
		}
		out[i] = m
	}
	return out
}

// clientDeflate compresses one message as a client with no context takeover does: a
// flushed deflate stream without its final 0x00 0x00 0xff 0xff (RFC 7692 7.2.1).
func clientDeflate(w *flate.Writer, p []byte) []byte {
	var b bytes.Buffer
	w.Reset(&b)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// compressedFrames is one compressed message as frames: RSV1 on the first, cut into
// fragments of frag bytes of compressed payload (0: one frame).
func compressedFrames(op byte, z []byte, frag int) []byte {
	if frag == 0 || len(z) <= frag {
		return frm(true, 4, op, z)
	}
	var out []byte
	for first := true; len(z) > 0; first = false {
		k := min(frag, len(z))
		o, rsv := byte(opCont), byte(0)
		if first {
			o, rsv = op, 4
		}
		out = append(out, frm(k == len(z), rsv, o, z[:k])...)
		z = z[k:]
	}
	return out
}

// inflate decompresses a server message (RFC 7692 7.2.2).
func inflate(p []byte) ([]byte, error) {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("inflating a server message: %w", err)
	}
	return out, nil
}

// deflateCase is one case of sections 12 and 13.
func deflateCase(id string, d testData, n, frag int, offer, answer string, window int) tcase {
	count := deflateCount(n)
	name := fmt.Sprintf("%s: %d compressed %s messages of %s", d.desc, count, kindName(d.op), size(n))
	if frag > 0 {
		name += fmt.Sprintf(" in fragments of %d bytes", frag)
	}
	name += ", offer `" + offer + "`"
	var evs []event
	for _, m := range messages(d.data(), n, count) {
		evs = append(evs, msg(d.op, m))
	}
	return tcase{
		id:   id,
		name: id + " " + name,
		send: func() []chunk {
			w, _ := flate.NewWriter(nil, flate.DefaultCompression)
			var cs []chunk
			for k, m := range messages(d.data(), n, count) {
				cs = append(cs, chunk{data: compressedFrames(d.op, clientDeflate(w, m), frag), await: k})
			}
			return cs
		},
		want:    want{events: evs, summary: "answer `" + answer + "`, each echoed (compressed within the answered window, or plain)"},
		verdict: pass,
		offer:   offer,
		answer:  answer,
		window:  window,
	}
}

func kindName(op byte) string {
	if op == opText {
		return "text"
	}
	return "binary"
}

// compressionCases are sections 12 (five kinds of data, the default offer) and 13 (JSON
// data, seven offers) of the Autobahn testsuite.
func compressionCases() []tcase {
	var cs []tcase
	for j, d := range deflateData {
		for i, s := range deflateSizes {
			cs = append(cs, deflateCase(fmt.Sprintf("12.%d.%d", j+1, i+1), d, s.n, s.frag,
				autobahnOffer(false, 0), deflateAnswer, 15))
		}
	}
	withBits := func(n int) string { return fmt.Sprintf("%s; server_max_window_bits=%d", deflateAnswer, n) }
	offers := []struct {
		offer, answer string
		window        int
	}{
		{autobahnOffer(false, 0), deflateAnswer, 15},
		{autobahnOffer(true, 0), deflateAnswer, 15},
		{autobahnOffer(false, 8), withBits(8), 8},
		{autobahnOffer(false, 15), withBits(15), 15},
		{autobahnOffer(true, 8), withBits(8), 8},
		{autobahnOffer(true, 15), withBits(15), 15},
		{autobahnOffer(true, 8) + ", " + autobahnOffer(true, 0) + ", " + autobahnOffer(false, 0), withBits(8), 8},
	}
	for j, o := range offers {
		for i, s := range deflateSizes {
			cs = append(cs, deflateCase(fmt.Sprintf("13.%d.%d", j+1, i+1), deflateData[0], s.n, s.frag, o.offer, o.answer, o.window))
		}
	}
	return cs
}
