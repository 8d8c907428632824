package frame

import (
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Handler receives what [Reader.Feed] parses. Its methods run on the
// goroutine that called Feed, one at a time, in the order of the frames on
// the wire; they must not call back into the Reader. Slices passed to them
// are valid only until the method returns. An error returned by a method
// stops Feed, which returns it as is.
type Handler interface {
	// Message is called for each complete data message (text or binary),
	// unmasked, with fragments reassembled. Text messages have already been
	// checked to be valid UTF-8.
	Message(op ws.OpCode, payload []byte) error
	// Control is called for each ping, pong and close frame, with its
	// payload unmasked; a close payload has already been validated: empty,
	// or a 2-byte status code valid per RFC 6455 section 7.4 followed by a
	// UTF-8 reason. Control frames that arrive between the fragments of a
	// message are delivered at once. The Reader keeps parsing after a close
	// frame; a handler that wants to stop there returns an error.
	Control(op ws.OpCode, payload []byte) error
}

// Reader is the per-connection incremental reader of client-to-server
// frames. The zero value is ready to use. A Reader is not safe for
// concurrent use.
//
// When idle (no partial frame and no fragmented message in progress) a
// Reader holds no buffer and is a single pointer; its state comes from a
// pool when a frame or message is left unfinished at the end of a Feed and
// goes back as soon as it is complete.
type Reader struct {
	st *state
}

// state is what a Reader holds between Feed calls while it is not idle.
type state struct {
	// err is returned by every Feed after the first error.
	err error

	// hdr holds the first bytes of a frame header that is not complete.
	hdr    [maxClientHeaderSize]byte
	hdrLen int

	// inFrame is set while the payload of frame is being received; got
	// payload bytes of it have been received so far.
	inFrame bool
	frame   ws.Header
	got     int64

	// ctl holds the payload of an unfinished control frame, which may come
	// between two fragments of a data message.
	ctl [ws.MaxControlFramePayloadSize]byte

	// msgOp is the opcode of the data message being assembled (text or
	// binary), 0 when there is none; msg holds its payload so far (nil
	// while empty) and text validates it when it is text. A compressed
	// message (its first frame had RSV1) is validated once inflated.
	msgOp      ws.OpCode
	compressed bool
	msg        *[]byte
	text       utf8Validator
}

// Feed consumes p, bytes just read from the socket, and calls h for every
// complete message and control frame in it.
//
// It may modify p in place (unmasking) and never keeps a reference to p
// after it returns: the bytes of an unfinished frame are copied into
// buffers the Reader owns, which grow as bytes arrive and go back to their
// pools when the frame or message completes. limit is the maximum size of
// an assembled message payload (0 or less: no limit); a data frame that
// would take its message over the limit is refused on its header.
//
// A handler error stops Feed and is returned as is. A protocol violation
// returns an [*Error]. Either way the Reader must not be fed again: later
// calls return the same error until [Reader.Release].
func (r *Reader) Feed(p []byte, limit int64, h Handler) error {
	_, err := r.FeedSome(p, limit, h)
	return err
}

// FeedSome is Feed for a caller that may stop early: when a Handler method
// returns [ErrPause], FeedSome stops after the frame that method was handed
// and returns the number of bytes of p it consumed together with ErrPause; the
// Reader stays usable and p[n:] is to be fed next. On any other outcome it is
// Feed, and n is meaningless when err is not nil or ErrPause.
func (r *Reader) FeedSome(p []byte, limit int64, h Handler) (n int, err error) {
	if r.st != nil && r.st.err != nil {
		return 0, r.st.err
	}
	n, err = r.feed(p, limit, h)
	if err != nil && err != ErrPause {
		r.fail(err)
	}
	return n, err
}

// Buffered reports how many bytes the Reader currently holds: the partial
// frame plus the partial message.
func (r *Reader) Buffered() int {
	st := r.st
	if st == nil {
		return 0
	}
	n := st.hdrLen
	if st.inFrame && st.frame.OpCode.IsControl() {
		n += int(st.got)
	}
	if st.msg != nil {
		n += len(*st.msg)
	}
	return n
}

// Partial reports whether the Reader is in the middle of a frame or of a
// fragmented message, so that the end of the stream now would be an
// unexpected EOF. It reports false after an error.
func (r *Reader) Partial() bool {
	st := r.st
	return st != nil && (st.hdrLen > 0 || st.inFrame || st.msgOp != 0)
}

// Release returns the buffers the Reader holds to their pools and forgets
// any error: the Reader is idle (zero) again. Call it when the connection
// is done with.
func (r *Reader) Release() {
	st := r.st
	if st == nil {
		return
	}
	r.st = nil
	if st.msg != nil {
		putBuf(st.msg)
	}
	*st = state{}
	statePool.Put(st)
}

func (r *Reader) feed(p []byte, limit int64, h Handler) (int, error) {
	done := 0
	for done < len(p) {
		var n int
		var err error
		if st := r.st; st != nil && (st.inFrame || st.hdrLen > 0) {
			n, err = r.resume(p[done:], limit, h)
		} else {
			n, err = r.start(p[done:], limit, h)
		}
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// start reads a frame from its first byte at p[0] and returns how many
// bytes of p it consumed. A frame that lies whole in p and does not belong
// to a fragmented message is handed over in place: this is the fast path.
func (r *Reader) start(p []byte, limit int64, h Handler) (int, error) {
	inMessage := r.st != nil && r.st.msgOp != 0
	if len(p) < 2 {
		return r.saveHeader(p), nil
	}
	if err := checkStart(p[0], p[1], inMessage, h); err != nil {
		return 0, err
	}
	hl := clientHeaderLen(p[1])
	if len(p) < hl {
		return r.saveHeader(p), nil
	}
	fh, herr := decodeHeader(p[:hl])
	if herr != nil {
		return 0, herr
	}
	compressed := fh.Rsv != 0 || inMessage && r.st.compressed
	if err := checkLength(fh, r.assembled(), limit, compressed); err != nil {
		return 0, err
	}
	rest := p[hl:]
	whole := fh.OpCode.IsControl() || fh.Fin && !inMessage
	if whole && fh.Length <= int64(len(rest)) {
		payload := rest[:fh.Length]
		ws.Cipher(payload, fh.Mask, 0)
		if fh.OpCode.IsControl() {
			return hl + len(payload), deliverControl(h, fh.OpCode, payload)
		}
		if compressed {
			return hl + len(payload), deliverInflated(h, fh.OpCode, payload, limit)
		}
		if fh.OpCode == ws.OpText && !utf8.Valid(payload) {
			return 0, newError(ws.StatusInvalidFramePayloadData, reasonInvalidText)
		}
		return hl + len(payload), h.Message(fh.OpCode, payload)
	}
	r.state().begin(fh)
	n, err := r.payload(rest, limit, h)
	return hl + n, err
}

// resume continues the unfinished header or payload of the current frame.
func (r *Reader) resume(p []byte, limit int64, h Handler) (int, error) {
	st := r.st
	if st.inFrame {
		return r.payload(p, limit, h)
	}
	n := 0
	if st.hdrLen < 2 {
		// One byte is saved at most, and p is not empty: this completes
		// the first two bytes.
		n = copy(st.hdr[st.hdrLen:2], p)
		st.hdrLen += n
		if err := checkStart(st.hdr[0], st.hdr[1], st.msgOp != 0, h); err != nil {
			return n, err
		}
	}
	hl := clientHeaderLen(st.hdr[1])
	c := copy(st.hdr[st.hdrLen:hl], p[n:])
	st.hdrLen += c
	n += c
	if st.hdrLen < hl {
		return n, nil
	}
	st.hdrLen = 0
	fh, herr := decodeHeader(st.hdr[:hl])
	if herr != nil {
		return n, herr
	}
	compressed := fh.Rsv != 0 || st.msgOp != 0 && st.compressed
	if err := checkLength(fh, r.assembled(), limit, compressed); err != nil {
		return n, err
	}
	st.begin(fh)
	m, err := r.payload(p[n:], limit, h)
	return n + m, err
}

// payload takes the next bytes of the current frame's payload from p,
// stores them, and finishes the frame when it is complete. It returns how
// many bytes of p it consumed.
func (r *Reader) payload(p []byte, limit int64, h Handler) (int, error) {
	st := r.st
	k := int(min(st.frame.Length-st.got, int64(len(p))))
	chunk := p[:k]
	ws.Cipher(chunk, st.frame.Mask, int(st.got&3))
	if st.frame.OpCode.IsControl() {
		copy(st.ctl[st.got:], chunk)
	} else {
		if st.msgOp == ws.OpText && !st.compressed && !st.text.write(chunk) {
			return k, newError(ws.StatusInvalidFramePayloadData, reasonInvalidText)
		}
		st.appendMessage(chunk)
	}
	st.got += int64(k)
	if st.got < st.frame.Length {
		return k, nil
	}

	st.inFrame = false
	var err error
	switch {
	case st.frame.OpCode.IsControl():
		err = deliverControl(h, st.frame.OpCode, st.ctl[:st.got])
	case !st.frame.Fin:
		return k, nil
	case st.compressed:
		var msg []byte
		if st.msg != nil {
			msg = *st.msg
		}
		err = deliverInflated(h, st.msgOp, msg, limit)
		st.endMessage()
	case st.msgOp == ws.OpText && !st.text.complete():
		return k, newError(ws.StatusInvalidFramePayloadData, reasonInvalidText)
	default:
		var msg []byte
		if st.msg != nil {
			msg = *st.msg
		}
		err = h.Message(st.msgOp, msg)
		st.endMessage()
	}
	if (err == nil || err == ErrPause) && st.msgOp == 0 {
		r.Release()
	}
	return k, err
}

func deliverControl(h Handler, op ws.OpCode, payload []byte) error {
	if op == ws.OpClose {
		if err := checkClosePayload(payload); err != nil {
			return err
		}
	}
	return h.Control(op, payload)
}

// state returns r's state, taking one from the pool if r is idle.
func (r *Reader) state() *state {
	if r.st == nil {
		r.st = statePool.Get().(*state)
	}
	return r.st
}

// saveHeader keeps the start of a frame header, less than a whole header.
func (r *Reader) saveHeader(p []byte) int {
	st := r.state()
	st.hdrLen = copy(st.hdr[:], p)
	return st.hdrLen
}

// assembled is the size of the message payload received so far.
func (r *Reader) assembled() int {
	if r.st == nil || r.st.msg == nil {
		return 0
	}
	return len(*r.st.msg)
}

// fail drops all buffered data and makes err the answer to every later Feed.
func (r *Reader) fail(err error) {
	st := r.state()
	st.endMessage()
	st.hdrLen = 0
	st.inFrame = false
	st.err = err
}

// begin starts receiving the payload of a frame whose header is h.
func (st *state) begin(h ws.Header) {
	st.frame = h
	st.got = 0
	st.inFrame = true
	if h.OpCode == ws.OpText || h.OpCode == ws.OpBinary {
		st.msgOp = h.OpCode
		st.compressed = h.Rsv != 0
		st.text = utf8Validator{}
	}
}

// appendMessage adds chunk to the message being assembled. The buffer grows
// with the bytes that actually arrived, at most doubling, whatever length the
// frame headers declare.
func (st *state) appendMessage(chunk []byte) {
	if len(chunk) == 0 {
		return
	}
	if st.msg == nil {
		st.msg = getBuf(len(chunk))
	}
	b := *st.msg
	if need := len(b) + len(chunk); need > cap(b) {
		grown := getBuf(max(need, 2*cap(b)))
		*grown = append(*grown, b...)
		putBuf(st.msg)
		st.msg = grown
		b = *grown
	}
	*st.msg = append(b, chunk...)
}

// endMessage gives the message buffer back to its pool.
func (st *state) endMessage() {
	if st.msg != nil {
		putBuf(st.msg)
		st.msg = nil
	}
	st.msgOp = 0
	st.compressed = false
	st.text = utf8Validator{}
}
