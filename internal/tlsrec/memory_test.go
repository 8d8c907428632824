package tlsrec

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// memConns is how many connections the memory tests hold: TLSREC_MEM_CONNS (docs/tls.md
// quotes a run with 2000), else 500, or 100 under the race detector or -short.
func memConns() int {
	if s := os.Getenv("TLSREC_MEM_CONNS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	if raceEnabled || testing.Short() {
		return 100
	}
	return 500
}

// retained measures the heap that the values kept by keep hold: the heap with them,
// minus the heap once they are dropped, per value.
func retained(t testing.TB, n int, keep func(i int) any) float64 {
	held := make([]any, n)
	for i := range held {
		held[i] = keep(i)
	}
	with := heapAfterGC()
	for i := range held {
		held[i] = nil
	}
	without := heapAfterGC()
	runtime.KeepAlive(held)
	return float64(int64(with)-int64(without)) / float64(n)
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// clientExchange runs a crypto/tls client over nc: handshake, one message and its echo.
// It closes nc's side when done, without close_notify, as a client that goes idle and
// whose socket the test then forgets.
func clientExchange(nc net.Conn, cfg *tls.Config, msg []byte) error {
	defer nc.Close()
	c := tls.Client(nc, cfg)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, len(msg)))
	return err
}

// TestIdleMemory: what an idle connection keeps after a handshake and one message each
// way, on this package's Conn and on a tls.Conn driven over an in-memory conn (the other
// way to run TLS on an event loop). docs/tls.md quotes the logged figures.
func TestIdleMemory(t *testing.T) {
	p := getPKI(t)
	n := memConns()
	ccfg := p.clientConfig()
	for _, size := range []int{64, maxPlaintext} {
		msg := bytes.Repeat([]byte{'m'}, size)
		r, err := NewRunner(p.serverConfig(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		serve := func(compact bool) float64 {
			return retained(t, n, func(int) any {
				cEnd, sEnd := net.Pipe()
				errc := make(chan error, 1)
				go func() { errc <- clientExchange(cEnd, ccfg, msg) }()
				res := serveConn(r, sEnd, 4096, len(msg))
				if err := <-errc; err != nil || res.conn == nil {
					t.Fatalf("client %v, server %v", err, res.err)
				}
				if compact {
					res.conn.Compact()
				}
				return res.conn
			})
		}
		ours, compacted := serve(false), serve(true)
		r.Close()
		theirs := retained(t, n, func(int) any {
			cEnd, sEnd := net.Pipe()
			errc := make(chan error, 1)
			go func() { errc <- clientExchange(cEnd, ccfg, msg) }()
			sc := &swapConn{Conn: sEnd}
			tc := tls.Server(sc, p.serverConfig())
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(tc, got); err != nil {
				t.Fatal(err)
			}
			if _, err := tc.Write(got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			sEnd.Close()
			sc.Conn = nil // keep the tls.Conn, not the pipe
			return tc
		})
		t.Logf("%d-byte message, %d connections, bytes kept per idle connection: tlsrec.Conn %.0f, after Compact %.0f; tls.Conn %.0f",
			size, n, ours, compacted, theirs)
		if compacted > 512 {
			t.Errorf("a compacted tlsrec.Conn retains %.0f B, want at most 512", compacted)
		}
		if ours > 2048 {
			t.Errorf("tlsrec.Conn retains %.0f B per idle connection, want at most 2 KiB", ours)
		}
		if ours >= theirs {
			t.Errorf("tlsrec.Conn (%.0f B) is not smaller than a tls.Conn (%.0f B)", ours, theirs)
		}
	}
}

// swapConn lets the test drop the pipe under a tls.Conn it keeps.
type swapConn struct{ net.Conn }
