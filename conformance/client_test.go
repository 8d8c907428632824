package conformance

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// Opcodes, written out so that reserved ones can be sent too.
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// frm builds one masked client frame by hand: fin, rsv (3 bits), opcode, payload.
func frm(fin bool, rsv byte, op byte, payload []byte) []byte {
	b0 := rsv<<4 | op&0x0f
	if fin {
		b0 |= 0x80
	}
	n := len(payload)
	out := make([]byte, 0, 14+n)
	out = append(out, b0)
	switch {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, mask[:]...)
	start := len(out)
	out = append(out, payload...)
	ws.Cipher(out[start:], mask, 0)
	return out
}

func text(p string) []byte      { return frm(true, 0, opText, []byte(p)) }
func binaryMsg(p []byte) []byte { return frm(true, 0, opBinary, p) }
func ping(p string) []byte      { return frm(true, 0, opPing, []byte(p)) }
func pong(p string) []byte      { return frm(true, 0, opPong, []byte(p)) }
func closeEmpty() []byte        { return frm(true, 0, opClose, nil) }
func closeWith(code int, reason string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	return frm(true, 0, opClose, append(b, reason...))
}

// fragments cuts payload into frames of at most size bytes: op first, continuations after.
func fragments(op byte, payload []byte, size int) []byte {
	var out []byte
	first := true
	for first || len(payload) > 0 {
		n := min(size, len(payload))
		o := byte(opCont)
		if first {
			o = op
		}
		out = append(out, frm(n == len(payload), 0, o, payload[:n])...)
		payload = payload[n:]
		first = false
	}
	return out
}

// event is what the server sent: a whole message, a pong, a close, or the end of the stream.
type event struct {
	kind string // "message", "pong", "close", "eof"
	op   byte
	data []byte
	code int // close code; 0 for an empty close body
	err  error
}

// dial opens a TCP connection and performs the opening handshake by hand, offering the
// extensions in offer (if any); it returns the server's Sec-WebSocket-Extensions answer.
func dial(addr, offer string) (net.Conn, *bufio.Reader, string, error) {
	c, err := dialConn(addr)
	if err != nil {
		return nil, nil, "", err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if offer != "" {
		req += "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		c.Close()
		return nil, nil, "", err
	}
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		c.Close()
		return nil, nil, "", fmt.Errorf("handshake: %s", resp.Status)
	}
	c.SetDeadline(time.Time{})
	return c, br, resp.Header.Get("Sec-WebSocket-Extensions"), nil
}

// readEvents parses the server's (unmasked) frames into events until the stream ends. It
// checks what a client must: no mask, no reserved bits, control frames whole and short.
// When permessage-deflate was negotiated (window > 0: the server's window bits), RSV1 is
// allowed on the first frame of a data message, whose payload is then inflated; a
// compressed message must fit the window (with no context takeover, a message no larger
// than the window cannot refer back further).
func readEvents(br *bufio.Reader, out chan<- event, window int) {
	defer close(out)
	var msgOp byte
	var msg []byte
	inMsg, compressed := false, false
	hdr := make([]byte, 14)
	for {
		ev, err := func() (*event, error) {
			if _, err := io.ReadFull(br, hdr[:2]); err != nil {
				return nil, err
			}
			fin, rsv, op := hdr[0]&0x80 != 0, hdr[0]&0x70, hdr[0]&0x0f
			firstData := (op == opText || op == opBinary) && !inMsg
			if hdr[1]&0x80 != 0 || rsv != 0 && !(rsv == 0x40 && window > 0 && firstData) {
				return nil, fmt.Errorf("server frame masked or with reserved bits: % x", hdr[:2])
			}
			n := uint64(hdr[1] & 0x7f)
			switch n {
			case 126:
				if _, err := io.ReadFull(br, hdr[2:4]); err != nil {
					return nil, err
				}
				n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
			case 127:
				if _, err := io.ReadFull(br, hdr[2:10]); err != nil {
					return nil, err
				}
				n = binary.BigEndian.Uint64(hdr[2:10])
			}
			if n > 64<<20 {
				return nil, fmt.Errorf("server frame of %d bytes", n)
			}
			p := make([]byte, n)
			if _, err := io.ReadFull(br, p); err != nil {
				return nil, err
			}
			switch op {
			case opPing:
				return nil, nil // keepalive; not part of any case
			case opPong:
				return &event{kind: "pong", data: p}, nil
			case opClose:
				e := &event{kind: "close"}
				if len(p) >= 2 {
					e.code = int(binary.BigEndian.Uint16(p))
					e.data = p[2:]
				}
				return e, nil
			case opText, opBinary:
				if inMsg {
					return nil, errors.New("server started a message inside another")
				}
				msgOp, msg, inMsg, compressed = op, p, true, rsv != 0
			case opCont:
				if !inMsg {
					return nil, errors.New("server sent a continuation with no message")
				}
				msg = append(msg, p...)
			default:
				return nil, fmt.Errorf("server sent opcode %#x", op)
			}
			if fin {
				inMsg = false
				if compressed {
					inflated, err := inflate(msg)
					if err != nil {
						return nil, err
					}
					msg = inflated
					if window < 15 && len(msg) > 1<<window {
						return nil, fmt.Errorf("compressed message of %d bytes for a window of %d", len(msg), 1<<window)
					}
				}
				return &event{kind: "message", op: msgOp, data: msg}, nil
			}
			return nil, nil
		}()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = nil
			}
			out <- event{kind: "eof", err: err}
			return
		}
		if ev != nil {
			out <- *ev
		}
	}
}

func (e event) String() string {
	switch e.kind {
	case "message":
		if len(e.data) > 40 {
			return fmt.Sprintf("message op %d, %d bytes", e.op, len(e.data))
		}
		return fmt.Sprintf("message op %d %q", e.op, e.data)
	case "pong":
		return fmt.Sprintf("pong %q", e.data)
	case "close":
		return fmt.Sprintf("close %d %q", e.code, e.data)
	}
	if e.err != nil {
		return "eof: " + e.err.Error()
	}
	return "eof"
}

func sameEvent(a, b event) bool {
	return a.kind == b.kind && a.op == b.op && bytes.Equal(a.data, b.data)
}
