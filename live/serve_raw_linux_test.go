//go:build linux

package live

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// Serve on a TCP listener reads handshakes on the event loop: connections that have not
// sent their request hold no goroutine, and requests that arrive in pieces, with bare "\n"
// line ends, or with the client's first frame in the same write are all upgraded. (Error
// answers and the handshake timeout are TestHostileHandshakes' and
// TestServeHandshakeTimeout's, which run Serve too.)
func TestServeReadsHandshakesOnTheLoop(t *testing.T) {
	_, url := serveListener(t, hostileOpts(nil, nil))
	checkHealthy(t, url) // the engine and a worker are up
	before := runtime.NumGoroutine()
	const silent = 200
	for range silent {
		c, err := net.DialTimeout("tcp", hostOf(url), waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	time.Sleep(200 * time.Millisecond) // let the server accept them all
	if grown := runtime.NumGoroutine() - before; grown > silent/10 {
		t.Fatalf("%d connections waiting for their request added %d goroutines", silent, grown)
	}

	req := upgradeRequest(http.MethodGet, url, nil)
	echo := clientFrame(opText, []byte(`{"topic":"t","data":"first"}`))
	cases := []struct {
		name   string
		pieces [][]byte
	}{
		{"in three pieces", [][]byte{req[:5], req[5:40], req[40:]}},
		{"bare newlines", [][]byte{bytes.ReplaceAll(req, []byte("\r\n"), []byte("\n"))}},
		{"with the first frame", [][]byte{append(append([]byte(nil), req...), echo...)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", hostOf(url), waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(waitTimeout))
			for i, p := range tc.pieces {
				if i > 0 {
					time.Sleep(30 * time.Millisecond)
				}
				if _, err := conn.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			rc := &rawClient{Conn: conn, br: bufio.NewReaderSize(conn, 256)}
			resp, err := http.ReadResponse(rc.br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("answer %v, %v; want 101", resp, err)
			}
			if tc.name != "with the first frame" {
				rc.write(t, echo)
			}
			if got := string(rc.mustFrame(t, opText)); got != `{"topic":"t","data":"first"}` {
				t.Fatalf("echo %q", got)
			}
		})
	}
}
