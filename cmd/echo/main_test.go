package main

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/internal/rawecho"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestEchoesEveryMessageUnchanged(t *testing.T) {
	for _, compress := range []bool{true, false} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) { testEcho(t, compress) })
	}
}

// testEcho runs the echo server with or without compression and a client that offers it.
func testEcho(t *testing.T, compress bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rawecho.New(16 << 20)
	hs := newHTTPServer(srv, compress)
	go hs.Serve(ln)
	defer func() {
		hs.Close()
		srv.Close()
	}()

	d := websocket.Dialer{WriteBufferSize: 4096, EnableCompression: true}
	c, resp, err := d.Dial("ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions") != ""; got != compress {
		t.Fatalf("extension negotiated: %v, want %v", got, compress)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	cases := []struct {
		name string
		op   int
		data []byte
	}{
		{"text", websocket.TextMessage, []byte("hello")},
		{"binary", websocket.BinaryMessage, []byte{0, 1, 2, 255}},
		{"empty", websocket.TextMessage, nil},
		{"16 MiB text, sent in 4 KiB fragments", websocket.TextMessage, big},
		{"not JSON", websocket.TextMessage, []byte(strings.Repeat("{", 1000))},
	}
	for _, tc := range cases {
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		if err := c.WriteMessage(tc.op, tc.data); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		op, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("%s: read: %v", tc.name, err)
		}
		if op != tc.op || !bytes.Equal(got, tc.data) {
			t.Fatalf("%s: echoed op %d, %d bytes; want op %d, %d bytes", tc.name, op, len(got), tc.op, len(tc.data))
		}
	}
}
