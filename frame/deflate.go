package frame

import (
	"compress/flate"
	"errors"
	"io"
	"math"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// permessage-deflate (RFC 7692) with no context takeover in either direction: every
// message is compressed, and inflated, on its own. So no flate state lives between two
// messages: a compressor or decompressor comes from a pool for one message and goes back,
// and an idle connection holds none.
//
// The standard library's flate. klauspost/compress's compresses a 2 KiB JSON message 2.5
// to 3 times as fast (frame/flatebench, numbers in docs/compression.md), but a Publish
// compresses once for all its subscribers, so that buys little where it matters most, and
// it would be the library's first dependency beyond gobwas/ws.

// CompressionHandler is a [Handler] that may receive compressed messages. Deflate is
// asked when a data frame arrives with RSV1 set (never otherwise): when it reports true —
// the connection negotiated permessage-deflate, with client_no_context_takeover — a text
// or binary message whose first frame has RSV1 set is inflated before Message sees it,
// its UTF-8 checked and the read limit applied to the inflated bytes. When it reports
// false, or the Handler does not implement it, RSV1 is a protocol error (1002), as are
// RSV1 on a control or continuation frame and RSV2 or RSV3 always.
type CompressionHandler interface {
	Handler
	Deflate() bool
}

// bitRsv1 is the RFC 7692 "Per-Message Compressed" bit in a frame's first byte.
const bitRsv1 = 0x40

// deflateLevel trades ratio for speed: on a 2 KiB JSON message level 1 is within 5 % of
// level 6's size at half its cost (BenchmarkDeflate).
const deflateLevel = flate.BestSpeed

// deflateTail is what RFC 7692 section 7.2.2 has the receiver append before inflating
// (the sender removed it), followed by an empty final stored block so that the
// decompressor reports io.EOF at the end of the message instead of waiting for more.
const deflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// compressedLimit bounds the compressed payload of a message whose inflated size must
// stay within limit: deflate may make incompressible data bigger (stored blocks add 5
// bytes per 64 KiB; fixed Huffman codes at most an eighth), and such a message must not
// be refused on its compressed size. The inflated size is what limit applies to.
func compressedLimit(limit int64) int64 {
	if limit <= 0 {
		return limit
	}
	if limit > (math.MaxInt64-64)/9*8 {
		return math.MaxInt64 // no room for the slack: as good as no bound
	}
	return limit + limit/8 + 64
}

// tailReader reads p and then deflateTail. It is an io.ByteReader so that the
// decompressor reads from it directly instead of wrapping it in a bufio.Reader.
type tailReader struct {
	p    []byte
	tail int // bytes of deflateTail read
}

func (r *tailReader) Read(b []byte) (int, error) {
	if len(r.p) > 0 {
		n := copy(b, r.p)
		r.p = r.p[n:]
		return n, nil
	}
	if r.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(b, deflateTail[r.tail:])
	r.tail += n
	return n, nil
}

func (r *tailReader) ReadByte() (byte, error) {
	if len(r.p) > 0 {
		c := r.p[0]
		r.p = r.p[1:]
		return c, nil
	}
	if r.tail == len(deflateTail) {
		return 0, io.EOF
	}
	c := deflateTail[r.tail]
	r.tail++
	return c, nil
}

// inflater is a pooled decompressor with its source.
type inflater struct {
	src tailReader
	fr  io.ReadCloser
}

var inflaters = sync.Pool{New: func() any {
	z := new(inflater)
	z.fr = flate.NewReader(&z.src)
	return z
}}

// inflate decompresses the payload of one compressed message into a buffer from the
// pool (give it back with putBuf). The output grows as the decompressor produces it and
// stops one byte past limit (0 or less: no limit): a message that inflates beyond limit
// costs at most that much memory and time before it gets 1009.
func inflate(p []byte, limit int64) (*[]byte, *Error) {
	z := inflaters.Get().(*inflater)
	z.src = tailReader{p: p}
	defer func() {
		z.src = tailReader{}
		inflaters.Put(z)
	}()
	if err := z.fr.(flate.Resetter).Reset(&z.src, nil); err != nil {
		return nil, newError(ws.StatusProtocolError, reasonInvalidDeflate)
	}
	most := int64(math.MaxInt)
	if limit > 0 && limit < most {
		most = limit + 1 // one byte over the limit proves the message too large
	}
	// A first guess from the bytes that did arrive, never from a declared length.
	out := getBuf(int(min(4*int64(len(p)), most)))
	for {
		b := *out
		if len(b) == cap(b) {
			grown := getBuf(int(min(2*int64(cap(b)), most)))
			*grown = append(*grown, b...)
			putBuf(out)
			out = grown
			b = *grown
		}
		room := b[len(b):min(int64(cap(b)), most)]
		n, err := z.fr.Read(room)
		*out = b[:len(b)+n]
		if limit > 0 && int64(len(*out)) > limit {
			putBuf(out)
			return nil, newError(ws.StatusMessageTooBig, reasonTooLarge)
		}
		switch {
		case err == io.EOF:
			return out, nil
		case err != nil:
			putBuf(out)
			return nil, newError(ws.StatusProtocolError, reasonInvalidDeflate)
		}
	}
}

// deflater is a pooled compressor with its destination.
type deflater struct {
	dst fixedWriter
	fw  *flate.Writer
}

var deflaters = sync.Pool{New: func() any {
	z := new(deflater)
	z.fw, _ = flate.NewWriter(&z.dst, deflateLevel) // the level is valid: no error
	return z
}}

// errNoRoom stops a compression whose output would not be smaller than its input.
var errNoRoom = errors.New("frame: compressed payload does not fit")

// fixedWriter appends to b without ever growing it.
type fixedWriter struct{ b []byte }

func (w *fixedWriter) Write(p []byte) (int, error) {
	if len(p) > cap(w.b)-len(w.b) {
		return 0, errNoRoom
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// Deflate compresses payload as one permessage-deflate message with no context takeover
// (RFC 7692 section 7.2.1: a flushed deflate stream without its final 0x00 0x00 0xff
// 0xff) and appends it to dst without growing it: the compressed bytes must fit in
// dst[len(dst):cap(dst)] together with the 4 removed ones, or Deflate gives up as soon as
// they do not and returns dst and false. So a caller that gives room for len(payload)
// bytes gets true only when compression saves at least 4 bytes.
//
// Every back-reference in the output is shorter than len(payload), so the message can be
// inflated with any window of at least len(payload) bytes (server_max_window_bits).
// Deflate is safe for concurrent use; the compressor is pooled and held only during the
// call.
func Deflate(dst, payload []byte) ([]byte, bool) {
	z := deflaters.Get().(*deflater)
	defer func() {
		z.dst.b = nil
		deflaters.Put(z)
	}()
	z.dst.b = dst
	z.fw.Reset(&z.dst)
	if _, err := z.fw.Write(payload); err != nil {
		return dst, false
	}
	if err := z.fw.Flush(); err != nil {
		return dst, false
	}
	out := z.dst.b
	// A flush ends with an empty stored block whose last 4 bytes are 0x00 0x00 0xff 0xff.
	return out[:len(out)-4], true
}

// PutDeflatedHeader is [PutHeader] for a frame whose payload Deflate compressed: it sets
// RSV1, the "Per-Message Compressed" bit.
func PutDeflatedHeader(dst []byte, op ws.OpCode, payloadLen int) int {
	n := PutHeader(dst, op, payloadLen)
	dst[0] |= bitRsv1
	return n
}

// checkRsv applies RFC 7692 section 6 to a frame whose first byte b0 has a reserved
// bit set: only RSV1, only on the first frame of a text or binary message, and only on
// a connection that negotiated compression.
func checkRsv(b0 byte, h Handler) *Error {
	ch, ok := h.(CompressionHandler)
	if b0&0x70 != bitRsv1 || !ok || !ch.Deflate() {
		return newError(ws.StatusProtocolError, reasonRsv)
	}
	if op := ws.OpCode(b0 & 0x0f); op != ws.OpText && op != ws.OpBinary {
		return newError(ws.StatusProtocolError, reasonRsvNotFirst)
	}
	return nil
}

// deliverInflated inflates a compressed message, checks its UTF-8 when it is text, and
// hands it to h.
func deliverInflated(h Handler, op ws.OpCode, p []byte, limit int64) error {
	out, ferr := inflate(p, limit)
	if ferr != nil {
		return ferr
	}
	defer putBuf(out)
	if op == ws.OpText && !utf8.Valid(*out) {
		return newError(ws.StatusInvalidFramePayloadData, reasonInvalidText)
	}
	return h.Message(op, *out)
}
