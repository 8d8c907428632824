package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gobwas/ws"
)

// testMask is the masking key of the RFC 6455 section 5.7 examples.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// Bits of the first header byte.
const (
	fin  = 0x80
	rsv1 = 0x40
	rsv2 = 0x20
	rsv3 = 0x10
)

// encode builds a client frame with first header byte b0. lenBytes forces
// the size of the extended length (0: minimal, 2 or 8); declared, unless it
// is -1, replaces the payload length in the header (as a uint64: -1<<63 sets
// the most significant bit).
func encode(b0 byte, masked bool, lenBytes int, declared int64, payload []byte) []byte {
	n := declared
	if n == -1 {
		n = int64(len(payload))
	}
	if lenBytes == 0 {
		switch {
		case uint64(n) > 0xffff:
			lenBytes = 8
		case n > 125:
			lenBytes = 2
		}
	}
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	out := []byte{b0}
	switch lenBytes {
	case 2:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	case 8:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	default:
		out = append(out, maskBit|byte(n))
	}
	start := len(out)
	if masked {
		out = append(out, testMask[:]...)
		start = len(out)
	}
	out = append(out, payload...)
	if masked {
		ws.Cipher(out[start:], testMask, 0)
	}
	return out
}

// frame is a final masked client frame.
func frame(op ws.OpCode, payload string) []byte {
	return encode(fin|byte(op), true, 0, -1, []byte(payload))
}

// fragment is a masked client frame without FIN.
func fragment(op ws.OpCode, payload string) []byte {
	return encode(byte(op), true, 0, -1, []byte(payload))
}

func concat(parts ...[]byte) []byte { return slices.Concat(parts...) }

// maskServerFrame turns a server frame (as AppendFrame writes it) into the
// frame a client would send: mask bit set, key inserted, payload masked.
func maskServerFrame(f []byte) []byte {
	hl := HeaderSize(0)
	switch f[1] & 0x7f {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	out := slices.Concat(f[:hl], testMask[:], f[hl:])
	out[1] |= 0x80
	ws.Cipher(out[hl+4:], testMask, 0)
	return out
}

// event is one handler call; control frames have a control opcode.
type event struct {
	op      ws.OpCode
	payload string
}

func (e event) String() string {
	p := e.payload
	if len(p) > 40 {
		p = fmt.Sprintf("%q...(%d bytes)", p[:40], len(p))
	} else {
		p = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf("op%d:%s", e.op, p)
}

// recorder is a Handler that records what it gets. It fails with errStop
// on call number failAt (1-based; 0: never).
type recorder struct {
	events  []event
	failAt  int
	pause   bool // answer every other call with ErrPause
	deflate bool // the connection negotiated permessage-deflate
}

func (r *recorder) Deflate() bool { return r.deflate }

var errStop = errors.New("handler stop")

func (r *recorder) Message(op ws.OpCode, p []byte) error {
	return r.record(op, p)
}

func (r *recorder) Control(op ws.OpCode, p []byte) error {
	return r.record(op, p)
}

func (r *recorder) record(op ws.OpCode, p []byte) error {
	r.events = append(r.events, event{op: op, payload: string(p)})
	if len(r.events) == r.failAt {
		return errStop
	}
	if r.pause {
		return ErrPause
	}
	return nil
}

// outcome is everything a run of a Reader over some input shows.
type outcome struct {
	events   []event
	err      string
	code     ws.StatusCode
	buffered int
	partial  bool
}

func (o outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "events=%v err=%q buffered=%d partial=%v", o.events, o.err, o.buffered, o.partial)
	return b.String()
}

func (o outcome) equal(p outcome) bool {
	return slices.Equal(o.events, p.events) && o.err == p.err && o.code == p.code &&
		o.buffered == p.buffered && o.partial == p.partial
}

// run feeds a copy of in to a new Reader, cut at the given increasing
// offsets, and reports the outcome. Feeding stops at the first error, as a
// server would; the error must then be sticky.
func run(in []byte, cuts []int, limit int64, failAt int) outcome {
	return runWith(in, cuts, limit, failAt, false)
}

// runWith is run on a connection that negotiated permessage-deflate or not.
func runWith(in []byte, cuts []int, limit int64, failAt int, deflate bool) outcome {
	in = slices.Clone(in)
	var r Reader
	defer r.Release()
	h := &recorder{failAt: failAt, deflate: deflate}
	var o outcome
	prev := 0
	for i := 0; i <= len(cuts); i++ {
		end := len(in)
		if i < len(cuts) {
			end = cuts[i]
		}
		err := r.Feed(in[prev:end], limit, h)
		prev = end
		if err == nil {
			continue
		}
		o.fail(err, func() error { return r.Feed([]byte{0x81}, limit, h) })
		break
	}
	o.events = h.events
	o.buffered = r.Buffered()
	o.partial = r.Partial()
	return o
}

// runPausing feeds a copy of in whole to a Reader whose handler pauses after
// every frame, feeding the rest again after each pause, as a server bounding
// its turns does; the outcome must be the same as without pauses.
func runPausing(in []byte, limit int64, failAt int) outcome {
	return runPausingWith(in, limit, failAt, false)
}

// runPausingWith is runPausing on a connection that negotiated permessage-deflate or not.
func runPausingWith(in []byte, limit int64, failAt int, deflate bool) outcome {
	in = slices.Clone(in)
	var r Reader
	defer r.Release()
	h := &recorder{failAt: failAt, pause: true, deflate: deflate}
	var o outcome
	for rest := in; ; {
		n, err := r.FeedSome(rest, limit, h)
		if err == ErrPause {
			if n <= 0 || n > len(rest) {
				o.err = fmt.Sprintf("paused after consuming %d of %d bytes", n, len(rest))
				break
			}
			rest = rest[n:]
			if len(rest) == 0 {
				break
			}
			continue
		}
		if err != nil {
			o.fail(err, func() error { _, again := r.FeedSome([]byte{0x81}, limit, h); return again })
		}
		break
	}
	o.events = h.events
	o.buffered = r.Buffered()
	o.partial = r.Partial()
	return o
}

// fail records a Feed error and checks that it is sticky.
func (o *outcome) fail(err error, feedAgain func() error) {
	o.err = err.Error()
	var fe *Error
	if errors.As(err, &fe) {
		o.code = fe.Code
	}
	if again := feedAgain(); again != err {
		o.err += fmt.Sprintf(" (then not sticky: %v)", again)
	}
}
