package servers_test

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/livepoll/livepoll/bench/internal/harness"
)

// compressing are the server apps with a -compress flag (mizu's live does not compress).
var compressing = []string{"livepoll", "gorilla", "nbio", "gws"}

// TestCompressedPubSub starts every compressing app with -compress and checks, with a
// client that offers permessage-deflate, that the answer accepts it and that a 2 KiB
// JSON publish arrives compressed and inflates to the envelope.
func TestCompressedPubSub(t *testing.T) {
	tmp := t.TempDir()
	for _, impl := range compressing {
		t.Run(impl, func(t *testing.T) {
			t.Parallel()
			bin := built(t, impl)
			srv := startCompressing(t, bin, filepath.Join(tmp, impl+".log"))
			defer srv.Stop(2 * time.Second)
			defer func() {
				if t.Failed() {
					t.Logf("server stderr (tail):\n%s", srv.LogTail(20))
				}
			}()
			testCompressed(t, srv.Addr)
		})
	}
}

// startCompressing is harness.StartServer with -compress.
func startCompressing(t *testing.T, bin, logPath string) *harness.Server {
	t.Helper()
	addr, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c, err := harness.Start(bin, []string{"-addr", addr, "-exit-after", "1m", "-compress"}, logPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &harness.Server{Child: c, Addr: addr, StatsAddr: addr}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := harness.FetchStats(addr, false); err == nil {
			return s
		}
		if c.Exited() || time.Now().After(deadline) {
			s.Stop(time.Second)
			t.Fatalf("server did not come up; stderr:\n%s", c.LogTail(20))
		}
	}
}

func testCompressed(t *testing.T, addr string) {
	url := "ws://" + addr + "/ws"
	var d ws.Dialer
	// Offers permessage-deflate; server_no_context_takeover; client_no_context_takeover.
	d.Extensions = append(d.Extensions, wsflate.DefaultParameters.Option())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if len(hs.Extensions) != 1 || string(hs.Extensions[0].Name) != "permessage-deflate" {
		t.Fatalf("extensions %v: permessage-deflate not negotiated", hs.Extensions)
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	c := &client{conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{r, conn}}
	c.send(t, `{"topic":"subscribe","data":{"topic":"t"}}`)
	c.send(t, `{"topic":"echo","data":1}`) // the subscribe has been handled once this is back
	if got, _ := readMessage(t, c); got != `{"topic":"echo","data":1}` {
		t.Fatalf("echo %s", got)
	}
	var data strings.Builder
	data.WriteString("[")
	for i := 0; data.Len() < 2000; i++ {
		fmt.Fprintf(&data, `{"id":%d,"name":"item-%d","ok":true},`, i, i%7)
	}
	payload := strings.TrimSuffix(data.String(), ",") + "]"
	c.send(t, `{"topic":"publish","data":{"topic":"t","data":`+payload+`}}`)
	got, compressed := readMessage(t, c)
	if want := `{"topic":"t","data":` + payload + `}`; got != want {
		t.Fatalf("publish: got %d bytes, want %d", len(got), len(want))
	}
	if !compressed {
		t.Fatal("2 KiB of JSON published without compression")
	}
}

// readMessage reads one unfragmented data frame and inflates it if RSV1 is set.
func readMessage(t *testing.T, c *client) (string, bool) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := ws.ReadFrame(c.rw)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if f.Header.OpCode.IsControl() {
			continue
		}
		if !f.Header.Fin {
			t.Fatal("fragmented message")
		}
		if f.Header.Rsv&0x4 == 0 {
			return string(f.Payload), false
		}
		in := io.MultiReader(bytes.NewReader(f.Payload), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff"))
		p, err := io.ReadAll(flate.NewReader(in))
		if err != nil {
			t.Fatalf("inflate: %v", err)
		}
		return string(p), true
	}
}
