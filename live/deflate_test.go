package live

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/frame"
)

const rsv1Bit = 0x40

// deflateOffer is the request header a test client offers compression with.
var deflateOffer = map[string]string{"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}

// jsonList is a valid JSON value of about n bytes that compresses well.
func jsonList(n int) []byte {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; b.Len() < n-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item-%d","ok":true}`, i, i%7)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// clientDeflate compresses p as a client does: a flushed deflate stream without its
// final 0x00 0x00 0xff 0xff.
func clientDeflate(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// clientInflate inflates a compressed server message with the standard library.
func clientInflate(t testing.TB, p []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff"))))
	if err != nil {
		t.Fatalf("inflate %d bytes: %v", len(p), err)
	}
	return out
}

// deflateDial upgrades a raw connection offering ext and returns the answer's extension.
func deflateDial(t testing.TB, url, ext string) (*rawClient, string) {
	t.Helper()
	resp, rc := rawHandshake(t, url, http.MethodGet, map[string]string{"Sec-WebSocket-Extensions": ext}, nil)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d", resp.StatusCode)
	}
	return rc, resp.Header.Get("Sec-WebSocket-Extensions")
}

// message reads one data frame; it reports whether it was compressed and returns its
// payload inflated.
func (rc *rawClient) message(t testing.TB) (compressed bool, payload []byte) {
	t.Helper()
	b0, p, err := rc.readFrame()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if op := b0 & 0x0f; op != opText && op != opBinary {
		t.Fatalf("got opcode %#x, want a data frame", op)
	}
	if b0&rsv1Bit == 0 {
		return false, p
	}
	return true, clientInflate(t, p)
}

func envelope(topic string, data []byte) []byte {
	return []byte(`{"topic":"` + topic + `","data":` + string(data) + `}`)
}

// TestCompressionNegotiatedOnBothPaths: Handler and Serve answer an offer only when
// Options.Compression is set, with no context takeover both ways.
func TestCompressionNegotiatedOnBothPaths(t *testing.T) {
	for _, on := range []bool{false, true} {
		opts := Options{Compression: on}
		_, url := testServer(t, opts)
		_, serveURL := serveListener(t, opts)
		for path, u := range map[string]string{"Handler": url, "Serve": serveURL} {
			_, got := deflateDial(t, u, "permessage-deflate; client_max_window_bits, permessage-deflate")
			want := ""
			if on {
				want = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
			}
			if got != want {
				t.Errorf("%s, Compression %v: Sec-WebSocket-Extensions %q, want %q", path, on, got, want)
			}
		}
	}
}

// TestCompressedRoundTrip: a compressed client message reaches OnMessage inflated, and
// Session.Send and Publish answer compressed when the payload is large enough and shrinks.
func TestCompressedRoundTrip(t *testing.T) {
	var srv *Server
	srv, url := testServer(t, Options{Compression: true, OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		switch topic {
		case "sub":
			srv.Subscribe(s, "t")
		case "send":
			s.Send(Message{Topic: "send", Data: data})
		case "pub":
			srv.Publish("t", data)
		}
	}})
	rc, ext := deflateDial(t, url, "permessage-deflate; client_max_window_bits")
	if ext == "" {
		t.Fatal("compression not negotiated")
	}
	big := jsonList(4096)
	rc.write(t, buildFrame(finBit|rsv1Bit|opText, clientDeflate(t, envelope("send", big)), true))
	if z, p := rc.message(t); !z || !bytes.Equal(p, envelope("send", big)) {
		t.Fatalf("Send: compressed %v, %d bytes", z, len(p))
	}
	small := []byte(`"hi"`)
	rc.write(t, buildFrame(finBit|rsv1Bit|opText, clientDeflate(t, envelope("send", small)), true))
	if z, p := rc.message(t); z || !bytes.Equal(p, envelope("send", small)) {
		t.Fatalf("small Send: compressed %v, %q", z, p)
	}
	rc.write(t, clientFrame(opText, envelope("sub", []byte("1"))))
	rc.write(t, clientFrame(opText, envelope("pub", big))) // a plain request, a compressed answer
	if z, p := rc.message(t); !z || !bytes.Equal(p, envelope("t", big)) {
		t.Fatalf("Publish: compressed %v, %d bytes", z, len(p))
	}
}

// TestIncompressibleGoesPlain: a message that compression would not make smaller is sent
// plain. JSON always shrinks under deflate's Huffman codes, so this uses the echo engine
// (cmd/echo's) with random binary messages.
func TestIncompressibleGoesPlain(t *testing.T) {
	srv := New(Options{Compression: true})
	srv.echo = true
	hs := newLoopbackServer(t, srv)
	t.Cleanup(func() { srv.Close() })
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	rc, ext := deflateDial(t, url, "permessage-deflate")
	if ext == "" {
		t.Fatal("compression not negotiated")
	}
	random := make([]byte, 3000)
	for i, x := 0, uint64(1); i < len(random); i++ {
		x = x*6364136223846793005 + 1442695040888963407
		random[i] = byte(x >> 56)
	}
	rc.write(t, buildFrame(finBit|rsv1Bit|opBinary, clientDeflate(t, random), true))
	if z, p := rc.message(t); z || !bytes.Equal(p, random) {
		t.Fatalf("random bytes echoed compressed %v, %d bytes", z, len(p))
	}
	json := jsonList(3000)
	rc.write(t, buildFrame(finBit|opText, json, true))
	if z, p := rc.message(t); !z || !bytes.Equal(p, json) {
		t.Fatalf("JSON echoed compressed %v, %d bytes", z, len(p))
	}
}

// TestGorillaCompression: gorilla/websocket's client with EnableCompression negotiates
// with livepoll and exchanges large compressed messages both ways.
func TestGorillaCompression(t *testing.T) {
	_, url := testServer(t, Options{Compression: true, OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		s.Send(Message{Topic: topic, Data: data})
	}})
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, EnableCompression: true}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(got, "permessage-deflate") {
		t.Fatalf("extension %q", got)
	}
	for _, n := range []int{300, 64 << 10, 1 << 20} {
		want := envelope("echo", jsonList(n))
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, want); err != nil {
			t.Fatal(err)
		}
		if _, got := readMsg(t, c); got != string(want) {
			t.Fatalf("%d bytes: echo differs (%d bytes)", n, len(got))
		}
	}
}

// TestPublishCompressesOnce: one Publish compresses its message once, however many
// subscribers negotiated compression; they all get the same compressed frame, the others
// the plain one. A session whose client set server_max_window_bits gets the compressed
// frame only when the message fits that window.
func TestPublishCompressesOnce(t *testing.T) {
	var srv *Server
	srv, url := testServer(t, Options{Compression: true, CompressionMinSize: 64, OnMessage: func(_ context.Context, s *Session, topic string, _ []byte) {
		srv.Subscribe(s, topic)
	}})
	type sub struct {
		rc   *rawClient
		want bool // gets the compressed frame
	}
	var subs []sub
	for i := range 9 {
		ext := ""
		switch i % 3 {
		case 0:
			ext = "permessage-deflate"
		case 1:
			ext = "permessage-deflate; server_max_window_bits=9" // 512 bytes: too small
		}
		rc, _ := deflateDial(t, url, ext)
		rc.write(t, clientFrame(opText, envelope("t", []byte("1"))))
		subs = append(subs, sub{rc, i%3 == 0})
	}
	waitUntil(t, waitTimeout, "subscriptions", func() bool { return subscriptions(srv) == len(subs) })
	data := jsonList(2048)
	before := deflatedFrames.Load()
	srv.Publish("t", data)
	if n := deflatedFrames.Load() - before; n != 1 {
		t.Fatalf("one Publish compressed %d times", n)
	}
	var wire []byte
	for i, sb := range subs {
		b0, p, err := sb.rc.readFrame()
		if err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		if got := b0&rsv1Bit != 0; got != sb.want {
			t.Fatalf("subscriber %d: compressed %v, want %v", i, got, sb.want)
		}
		if sb.want {
			if wire == nil {
				wire = p
			} else if !bytes.Equal(p, wire) {
				t.Fatalf("subscriber %d got other compressed bytes", i)
			}
			p = clientInflate(t, p)
		}
		if !bytes.Equal(p, envelope("t", data)) {
			t.Fatalf("subscriber %d: payload differs", i)
		}
	}
	if len(wire) >= len(data)/2 {
		t.Fatalf("2 KiB of JSON compressed to %d bytes", len(wire))
	}
	// A message that fits the 512-byte window goes compressed to those sessions too.
	before = deflatedFrames.Load()
	small := jsonList(400)
	srv.Publish("t", small)
	for i, sb := range subs {
		b0, _, err := sb.rc.readFrame()
		if err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		if got, want := b0&rsv1Bit != 0, i%3 != 2; got != want {
			t.Fatalf("400-byte message, subscriber %d: compressed %v, want %v", i, got, want)
		}
	}
	if n := deflatedFrames.Load() - before; n != 1 {
		t.Fatalf("second Publish compressed %d times", n)
	}
}

// TestCompressedInboundViolations: the close code and error of every way a client can
// get compression wrong.
func TestCompressedInboundViolations(t *testing.T) {
	bomb := clientDeflate(t, envelope("x", []byte(`"`+strings.Repeat("a", 8<<20)+`"`)))
	cases := []struct {
		name    string
		ext     string
		in      []byte
		outcome string
		err     error
	}{
		{"RSV1 without negotiation", "", buildFrame(finBit|rsv1Bit|opText, clientDeflate(t, []byte("{}")), true), "close 1002", ErrProtocol},
		{"RSV1 on a ping", "permessage-deflate", buildFrame(finBit|rsv1Bit|opPing, nil, true), "close 1002", ErrProtocol},
		{"RSV1 on a continuation", "permessage-deflate", append(buildFrame(opText, []byte("{"), true), buildFrame(finBit|rsv1Bit|opCont, []byte("}"), true)...), "close 1002", ErrProtocol},
		{"invalid compressed data", "permessage-deflate", buildFrame(finBit|rsv1Bit|opBinary, []byte{0xff, 0xff, 0xff}, true), "close 1002", ErrProtocol},
		{"bomb over ReadLimit once inflated", "permessage-deflate", buildFrame(finBit|rsv1Bit|opText, bomb, true), "close 1009", ErrMessageTooLarge},
		{"invalid UTF-8 once inflated", "permessage-deflate", buildFrame(finBit|rsv1Bit|opText, clientDeflate(t, []byte("\xff\xfe")), true), "close 1007", ErrInvalidUTF8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log := newCloseLog(t)
			_, url := testServer(t, Options{Compression: true, ReadLimit: 1 << 20, OnClose: log.OnClose})
			rc, _ := deflateDial(t, url, tc.ext)
			rc.write(t, tc.in)
			if got := rc.outcome(); got != tc.outcome {
				t.Fatalf("outcome %q, want %q", got, tc.outcome)
			}
			if ev := log.next(t); !errors.Is(ev.err, tc.err) {
				t.Fatalf("OnClose error %v, want %v", ev.err, tc.err)
			}
		})
	}
}

// TestCompressedFragmentsWithControlFrames: a compressed message in fragments, with a
// ping and a pong between them, is answered with the pong first and then the message.
func TestCompressedFragmentsWithControlFrames(t *testing.T) {
	_, url := testServer(t, Options{Compression: true, OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		s.Send(Message{Topic: topic, Data: data})
	}})
	rc, _ := deflateDial(t, url, "permessage-deflate")
	want := envelope("frag", jsonList(10000))
	z := clientDeflate(t, want)
	third := len(z) / 3
	var in []byte
	in = append(in, buildFrame(rsv1Bit|opText, z[:third], true)...)
	in = append(in, clientFrame(opPing, []byte("p"))...)
	in = append(in, buildFrame(opCont, z[third:2*third], true)...)
	in = append(in, clientFrame(opPong, nil)...)
	in = append(in, buildFrame(finBit|opCont, z[2*third:], true)...)
	rc.write(t, in)
	if p := rc.mustFrame(t, opPong); string(p) != "p" {
		t.Fatalf("pong %q", p)
	}
	if z, p := rc.message(t); !z || !bytes.Equal(p, want) {
		t.Fatalf("echo: compressed %v, %d bytes", z, len(p))
	}
}

// TestIdleCompressedSessionHoldsNoState: sessions that negotiated compression and
// exchanged compressed messages cost, once idle, what sessions without it cost: no
// compressor or decompressor stays with them.
func TestIdleCompressedSessionHoldsNoState(t *testing.T) {
	const n = 200
	srv, url := testServer(t, Options{Compression: true, OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		s.Send(Message{Topic: topic, Data: data})
	}})
	msg := envelope("m", jsonList(4096))
	heap := func() uint64 {
		var ms runtime.MemStats
		for range 3 {
			runtime.GC() // sync.Pool keeps its items for one GC more
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	group := func(ext string) uint64 {
		before := heap()
		for range n {
			rc, _ := deflateDial(t, url, ext)
			if ext != "" {
				rc.write(t, buildFrame(finBit|rsv1Bit|opText, clientDeflate(t, msg), true))
			} else {
				rc.write(t, clientFrame(opText, msg))
			}
			if _, p := rc.message(t); !bytes.Equal(p, msg) {
				t.Fatal("echo differs")
			}
		}
		after := heap()
		return (after - min(before, after)) / n
	}
	plain := group("")
	compressed := group("permessage-deflate")
	if openSessions(srv) != 2*n {
		t.Fatalf("%d sessions open", openSessions(srv))
	}
	t.Logf("heap per session (with its raw client): plain %d B, compressed %d B", plain, compressed)
	// A pooled decompressor is about 40 KiB, a compressor more: one per session would be
	// far above this margin.
	if compressed > plain+1024 {
		t.Fatalf("a compressed session costs %d B, a plain one %d B", compressed, plain)
	}
}

// TestDeflatedFrameIsValid: deflateFrame writes a frame whose header and payload a
// client reads back.
func TestDeflatedFrameIsValid(t *testing.T) {
	for _, n := range []int{300, 70000} {
		p := jsonList(n)
		f := deflateFrame(2, p)
		if f == nil {
			t.Fatalf("%d bytes of JSON did not shrink", n)
		}
		op, body := framePayload(f.B)
		if op != 2 || f.B[0]&rsv1Bit == 0 || frame.HeaderSize(len(body))+len(body) != len(f.B) {
			t.Fatalf("header % x for %d bytes", f.B[:4], len(body))
		}
		if got := clientInflate(t, body); !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: inflated %d", n, len(got))
		}
		f.Release()
	}
}
