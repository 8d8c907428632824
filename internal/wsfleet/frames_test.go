package wsfleet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/gobwas/ws"
)

// serverFrame is an unmasked frame as a server sends it.
func serverFrame(fin bool, op ws.OpCode, p []byte) []byte {
	var b bytes.Buffer
	if err := ws.WriteFrame(&b, ws.Frame{Header: ws.Header{Fin: fin, OpCode: op, Length: int64(len(p))}, Payload: p}); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func TestParseFramesWholeAndSplit(t *testing.T) {
	type frame struct {
		fin bool
		op  ws.OpCode
		p   []byte
	}
	cases := []struct {
		name   string
		frames []frame
	}{
		{"empty text", []frame{{true, ws.OpText, nil}}},
		{"125-byte payload (7-bit length)", []frame{{true, ws.OpText, bytes.Repeat([]byte{'a'}, 125)}}},
		{"126-byte payload (16-bit length)", []frame{{true, ws.OpBinary, bytes.Repeat([]byte{'b'}, 126)}}},
		{"65535-byte payload", []frame{{true, ws.OpText, bytes.Repeat([]byte{'c'}, 65535)}}},
		{"65536-byte payload (64-bit length)", []frame{{true, ws.OpText, bytes.Repeat([]byte{'d'}, 65536)}}},
		{"ping, fragments, close", []frame{
			{true, ws.OpPing, []byte("p")},
			{false, ws.OpText, []byte("frag")},
			{true, ws.OpContinuation, []byte("ment")},
			{true, ws.OpClose, []byte{0x03, 0xe9}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var wire []byte
			for _, f := range tc.frames {
				wire = append(wire, serverFrame(f.fin, f.op, f.p)...)
			}
			// Feed the bytes in two pieces, split at every position (every 997th for the
			// big ones), keeping the unparsed tail as the loop does.
			step := 1
			if len(wire) > 4096 {
				step = 997
			}
			for split := 0; split <= len(wire); split += step {
				var got []frame
				var tail []byte
				for _, piece := range [][]byte{wire[:split], wire[split:]} {
					data := append(tail, piece...)
					used, err := ParseFrames(data, maxFrame, func(fr Frame) error {
						got = append(got, frame{fr.Fin, fr.Op, bytes.Clone(fr.Payload)})
						return nil
					})
					if err != nil {
						t.Fatalf("split %d: %v", split, err)
					}
					tail = append([]byte(nil), data[used:]...)
				}
				if len(tail) != 0 || len(got) != len(tc.frames) {
					t.Fatalf("split %d: %d frames, %d bytes left; want %d frames", split, len(got), len(tail), len(tc.frames))
				}
				for i := range got {
					w := tc.frames[i]
					if got[i].fin != w.fin || got[i].op != w.op || !bytes.Equal(got[i].p, w.p) {
						t.Fatalf("split %d: frame %d = %v %v %d bytes, want %v %v %d bytes", split, i, got[i].fin, got[i].op, len(got[i].p), w.fin, w.op, len(w.p))
					}
				}
			}
		})
	}
}

// RSV1 (a compressed message's first frame) reaches the handler; the other frames
// do not have it.
func TestParseFramesRSV1(t *testing.T) {
	var b bytes.Buffer
	compressed := ws.Frame{Header: ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpText, Length: 3}, Payload: []byte{1, 2, 3}}
	if err := ws.WriteFrame(&b, compressed); err != nil {
		t.Fatal(err)
	}
	wire := append(b.Bytes(), serverFrame(true, ws.OpText, []byte("{}"))...)
	var got []bool
	used, err := ParseFrames(wire, maxFrame, func(f Frame) error {
		got = append(got, f.RSV1)
		return nil
	})
	if err != nil || used != len(wire) || fmt.Sprint(got) != "[true false]" {
		t.Fatalf("RSV1 of the frames: %v (used %d of %d, %v), want [true false]", got, used, len(wire), err)
	}
}

func TestParseFramesRejects(t *testing.T) {
	masked := AppendClientFrame(nil, ws.OpText, []byte("hi")) // a client frame: masked
	huge := binary.BigEndian.AppendUint64([]byte{0x81, 127}, maxFrame+1)
	for name, wire := range map[string][]byte{"masked server frame": masked, "frame over 1 GiB": huge} {
		if _, err := ParseFrames(wire, maxFrame, func(Frame) error { return nil }); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err %v, want ErrProtocol", name, err)
		}
	}
	// A lower limit holds for every length encoding: 126 bytes (16-bit length) is over
	// 125, while 125 bytes (7-bit) is not.
	over := serverFrame(true, ws.OpText, bytes.Repeat([]byte{'x'}, 126))
	if _, err := ParseFrames(over, 125, func(Frame) error { return nil }); !errors.Is(err, ErrProtocol) {
		t.Errorf("126 bytes with limit 125: err %v, want ErrProtocol", err)
	}
	at := serverFrame(true, ws.OpText, bytes.Repeat([]byte{'x'}, 125))
	if used, err := ParseFrames(at, 125, func(Frame) error { return nil }); err != nil || used != len(at) {
		t.Errorf("125 bytes with limit 125: used %d of %d, err %v", used, len(at), err)
	}
}

func TestAppendClientFrameIsMaskedAndReadable(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte{'x'}, n)
		f, err := ws.ReadFrame(bytes.NewReader(AppendClientFrame(nil, ws.OpText, p)))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !f.Header.Masked || !f.Header.Fin || f.Header.OpCode != ws.OpText {
			t.Fatalf("%d bytes: header %+v", n, f.Header)
		}
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		if !bytes.Equal(f.Payload, p) {
			t.Fatalf("%d bytes: payload differs", n)
		}
	}
}

func TestParseClose(t *testing.T) {
	if e := ParseClose([]byte{0x03, 0xe9, 'b', 'y', 'e'}); e.Code != 1001 || e.Reason != "bye" {
		t.Errorf("got %+v", e)
	}
	if e := ParseClose(nil); e.Code != 0 || e.Reason != "" {
		t.Errorf("empty: got %+v", e)
	}
}

// FuzzParseFrames feeds arbitrary server bytes, whole and split in two as reads deliver
// them: the parser must not panic, must consume only whole frames, and must see the same
// frames either way.
func FuzzParseFrames(f *testing.F) {
	f.Add(serverFrame(true, ws.OpText, []byte("hello")), 2)
	f.Add(serverFrame(true, ws.OpBinary, bytes.Repeat([]byte{'b'}, 126)), 3)
	f.Add(append(serverFrame(true, ws.OpPing, []byte("p")), serverFrame(true, ws.OpClose, []byte{0x03, 0xe9})...), 4)
	f.Add(binary.BigEndian.AppendUint64([]byte{0x81, 127}, maxFrame+1), 5)
	f.Add(AppendClientFrame(nil, ws.OpText, []byte("masked")), 1)
	f.Fuzz(func(t *testing.T, wire []byte, split int) {
		collect := func(pieces ...[]byte) (frames []string, rest int, err error) {
			var tail []byte
			for _, piece := range pieces {
				data := append(tail, piece...)
				used, err := ParseFrames(data, maxFrame, func(fr Frame) error {
					frames = append(frames, fmt.Sprint(fr.Fin, fr.RSV1, fr.Op, string(fr.Payload)))
					return nil
				})
				if used < 0 || used > len(data) {
					t.Fatalf("consumed %d of %d bytes", used, len(data))
				}
				if err != nil {
					return frames, 0, err
				}
				tail = append([]byte(nil), data[used:]...)
			}
			return frames, len(tail), nil
		}
		whole, restWhole, errWhole := collect(wire)
		split = min(max(split, 0), len(wire))
		parts, restParts, errParts := collect(wire[:split], wire[split:])
		if (errWhole == nil) != (errParts == nil) {
			t.Fatalf("whole: %v, split at %d: %v", errWhole, split, errParts)
		}
		if errWhole == nil && (restWhole != restParts || fmt.Sprint(whole) != fmt.Sprint(parts)) {
			t.Fatalf("split at %d: %d frames, %d left; whole: %d frames, %d left", split, len(parts), restParts, len(whole), restWhole)
		}
	})
}
