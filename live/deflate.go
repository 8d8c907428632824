package live

import (
	"sync/atomic"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/frame"
	"github.com/livepoll/livepoll/pool"
)

// Compressed frames (permessage-deflate, docs/compression.md). A session that negotiated
// compression records only the window its messages must fit (Session.zbits); it holds no
// compressor: frame.Deflate takes one from a pool for one message. Publish compresses a
// message once, the first time a subscriber that negotiated compression needs it, and
// shares the compressed frame among all of them; the others get the plain frame.

// defaultCompressionMinSize is the payload below which messages go plain: under a few
// hundred bytes deflate saves little (a 2 KiB JSON message shrinks to about 30 %, a
// 100-byte one hardly at all) and costs a pooled compressor and a frame.
const defaultCompressionMinSize = 256

// deflatedFrames counts messages compressed for sending (tests check that Publish
// compresses once per message, not once per subscriber).
var deflatedFrames atomic.Uint64

// Deflate tells the frame reader whether this session accepts compressed messages
// (frame.CompressionHandler); it is asked only for frames with RSV1 set.
func (h *frameHandler) Deflate() bool { return h.zbits != 0 }

// wantsDeflated reports whether a payload of n bytes goes compressed to s: compression
// was negotiated, n is at least CompressionMinSize, and n fits the window the client set
// with server_max_window_bits (no back-reference is then as long as the window).
func (s *Session) wantsDeflated(n int) bool {
	return s.zbits != 0 && n >= s.srv.opts.CompressionMinSize && (s.zbits >= maxWindowBits || n <= 1<<s.zbits)
}

// deflateFrame returns a compressed frame with payload, or nil when compressing does not
// make it smaller. The compressed bytes are copied into a buffer of their own size, so a
// queued compressed frame holds (and counts against QueueBytes) what it sends.
func deflateFrame(op ws.OpCode, payload []byte) *pool.Shared {
	scratch := pool.Get(len(payload))
	defer pool.Put(scratch)
	body, ok := frame.Deflate((*scratch)[:0:len(payload)], payload)
	if !ok {
		return nil
	}
	deflatedFrames.Add(1)
	hl := frame.HeaderSize(len(body))
	f := pool.NewShared(hl + len(body))
	frame.PutDeflatedHeader(f.B, op, len(body))
	copy(f.B[hl:], body)
	return f
}

// framePayload returns the payload of a server frame built by this package (final,
// unmasked) and its opcode.
func framePayload(b []byte) (ws.OpCode, []byte) {
	hl := 2
	switch b[1] & 0x7f {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	return ws.OpCode(b[0] & 0x0f), b[hl:]
}

// outgoing is one message for one or many sessions: its plain frame, and its
// compressed frame, made the first time a session wants it.
type outgoing struct {
	plain *pool.Shared
	z     *pool.Shared
	tried bool // compressing was tried: z is the result (nil if it did not shrink)
}

// frameFor returns the frame s gets: the compressed one if s negotiated compression
// and the payload qualifies and shrinks, else the plain one.
func (m *outgoing) frameFor(s *Session) *pool.Shared {
	if s.zbits == 0 {
		return m.plain
	}
	op, payload := framePayload(m.plain.B)
	if !s.wantsDeflated(len(payload)) {
		return m.plain
	}
	if !m.tried {
		m.tried = true
		m.z = deflateFrame(op, payload)
	}
	if m.z == nil {
		return m.plain
	}
	return m.z
}

// release drops the compressed frame; the plain one stays the caller's.
func (m *outgoing) release() {
	if m.z != nil {
		m.z.Release()
		m.z = nil
	}
}

// deliverMessage is deliver for a frame that may go compressed (Session.Send).
func (s *Session) deliverMessage(f *pool.Shared) error {
	m := outgoing{plain: f}
	err := s.deliver(m.frameFor(s))
	m.release()
	return err
}

// sendEcho is sendFrame for the echo engine's answers, compressed when the session
// negotiated it.
func (s *Session) sendEcho(op ws.OpCode, payload []byte) error {
	if s.wantsDeflated(len(payload)) {
		if f := deflateFrame(op, payload); f != nil {
			err := s.deliver(f)
			f.Release()
			if err != nil {
				return errStopReading
			}
			return nil
		}
	}
	return s.sendFrame(op, payload)
}
