package live

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Idle wss sessions cost no goroutine: 200 clients that exchanged a message leave the
// goroutine count where it was.
func TestServeTLSIdleNoGoroutines(t *testing.T) {
	srv := echoServer(Options{})
	url, client := serveTLS(t, srv)
	warm := tlsRawDial(t, url, client, 0, nil) // the event loop's own goroutines start
	exchange(t, warm)
	base := stableGoroutines()
	const n = 200
	for range n {
		exchange(t, tlsRawDial(t, url, client, 0, nil))
	}
	if got := stableGoroutines(); got > base+5 {
		t.Fatalf("%d goroutines with %d more idle wss sessions, %d before", got, n, base)
	}
}

// exchange sends one message and reads its echo.
func exchange(t testing.TB, rc *rawClient) {
	t.Helper()
	rc.write(t, clientFrame(opText, []byte(`{"topic":"t","data":"hello"}`)))
	rc.SetReadDeadline(time.Now().Add(waitTimeout))
	if p := rc.mustFrame(t, opText); string(p) != `{"topic":"t","data":"hello"}` {
		t.Fatalf("echo %s", p)
	}
	rc.SetReadDeadline(time.Time{})
}

// TestServeTLSIdleMemory measures what an idle session costs the server after one
// message each way: heap and RSS at each count in LIVE_TLS_MEM_CONNS (e.g.
// "1000,4000"), the clients in a child process so that their memory is not counted; the
// slope between the first and the last count is the cost per connection. It runs for
// wss (ServeTLS) and, for comparison, ws (Serve).
//
//	LIVE_TLS_MEM_CONNS=1000,4000 go test -count=1 -run TLSIdleMemory -v ./live
func TestServeTLSIdleMemory(t *testing.T) {
	spec := os.Getenv("LIVE_TLS_MEM_CONNS")
	if spec == "" {
		t.Skip("set LIVE_TLS_MEM_CONNS=1000,4000 to measure (a child process opens the connections)")
	}
	var counts []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			t.Fatalf("LIVE_TLS_MEM_CONNS: %q", spec)
		}
		counts = append(counts, n)
	}
	// Restored after the servers' cleanups (registered later, run earlier) stopped them.
	old := tlsCompactAfter
	t.Cleanup(func() { tlsCompactAfter = old })
	tlsCompactAfter = 500 * time.Millisecond // with pings every second
	for _, mode := range []struct {
		scheme, when string
		ping         time.Duration
	}{
		{"ws", "after one message", -1},
		{"wss", "after one message", -1},
		{"ws", "after a keepalive round", time.Second},
		{"wss", "after a keepalive round", time.Second},
	} {
		scheme, when := mode.scheme, mode.when
		t.Run(scheme+" "+when, func(t *testing.T) {
			srv := echoServer(Options{PingInterval: mode.ping})
			var url string
			if scheme == "wss" {
				url, _ = serveTLS(t, srv)
			} else { // Serve: the same accept path as ServeTLS, without TLS
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				served := make(chan error, 1)
				go func() { served <- srv.Serve(ln) }()
				t.Cleanup(func() { srv.Close(); <-served })
				url = "ws://" + ln.Addr().String() + "/"
			}
			child := exec.Command(os.Args[0], "-test.run=^TestTLSFleetChild$", "-test.count=1")
			child.Env = append(os.Environ(), "LIVE_TLS_FLEET_URL="+url, "LIVE_TLS_FLEET_CA="+string(testCA.certPEMCA))
			in, err := child.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			out, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			child.Stderr = os.Stderr
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			defer child.Wait()
			defer in.Close()
			lines := bufio.NewScanner(out)
			type point struct{ heap, rss, rssFreed, goroutines, sessions int }
			measure := func(n int) point {
				var ms runtime.MemStats
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&ms)
				p := point{heap: int(ms.HeapAlloc), rss: rss(t), goroutines: runtime.NumGoroutine(), sessions: srv.Stats().Sessions}
				debug.FreeOSMemory() // RSS again without the heap the GC has freed but kept
				p.rssFreed = rss(t)
				if p.sessions != n {
					t.Fatalf("%d sessions, want %d", p.sessions, n)
				}
				t.Logf("%s, %d connections, %s: heap %d B, RSS %d B (%d B after FreeOSMemory), %d goroutines", scheme, n, when, p.heap, p.rss, p.rssFreed, p.goroutines)
				return p
			}
			var points []point
			for _, n := range counts {
				fmt.Fprintln(in, n)
				ready := make(chan string, 1)
				go func() {
					for lines.Scan() {
						if l := lines.Text(); strings.HasPrefix(l, "fleet ") {
							ready <- l
							return
						}
					}
					ready <- "fleet: child ended"
				}()
				select {
				case l := <-ready:
					if l != fmt.Sprintf("fleet %d", n) {
						t.Fatalf("child: %s", l)
					}
				case <-time.After(2 * time.Minute):
					t.Fatal("child did not open its connections in 2 minutes")
				}
				if mode.ping > 0 {
					// Keepalive pings (every second here) reach every idle session;
					// their pongs compact a wss session's keys.
					pongsBefore := srv.Stats().BytesIn
					time.Sleep(2500 * time.Millisecond)
					if srv.Stats().BytesIn == pongsBefore {
						t.Fatal("no pong came back")
					}
				}
				points = append(points, measure(n))
			}
			first, last := points[0], points[len(points)-1]
			dn := float64(last.sessions - first.sessions)
			t.Logf("%s per idle connection %s (%d…%d): heap %.0f B, RSS %.0f B (%.0f B after FreeOSMemory), goroutines %.3f",
				scheme, when, first.sessions, last.sessions, float64(last.heap-first.heap)/dn,
				float64(last.rss-first.rss)/dn, float64(last.rssFreed-first.rssFreed)/dn,
				float64(last.goroutines-first.goroutines)/dn)
			// The target: at most 4 KiB and no goroutine per idle connection.
			if heap := float64(last.heap-first.heap) / dn; heap > 4096 {
				t.Errorf("heap per idle connection %.0f B, over 4 KiB", heap)
			}
			if g := float64(last.goroutines-first.goroutines) / dn; g >= 0.01 {
				t.Errorf("%.3f goroutines per idle connection", g)
			}
		})
	}
}

// rss is this process's resident set size.
func rss(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.Atoi(f[1])
	return pages * os.Getpagesize()
}

// TestTLSFleetChild is TestServeTLSIdleMemory's client process: for each count read
// from stdin it opens connections up to that count, each exchanging one message, and
// answers "fleet N"; it exits when stdin closes.
func TestTLSFleetChild(t *testing.T) {
	url := os.Getenv("LIVE_TLS_FLEET_URL")
	if url == "" {
		t.Skip("run by TestServeTLSIdleMemory")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(os.Getenv("LIVE_TLS_FLEET_CA")))
	client := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	var conns []*rawClient
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, _ := strconv.Atoi(in.Text())
		for len(conns) < n {
			var rc *rawClient
			var err error
			if strings.HasPrefix(url, "wss:") {
				rc, err = tlsRawDialErr(url, client, 0, nil)
			} else {
				rc, err = dialIdle(url, 0)
			}
			if err != nil {
				fmt.Printf("fleet: dial %d: %v\n", len(conns), err)
				return
			}
			exchange(t, rc)
			conns = append(conns, rc)
			go answerPings(rc)
		}
		fmt.Printf("fleet %d\n", n)
	}
}

// answerPings reads rc until it fails, answering pings (the keepalive of an idle
// session). Server frames are unmasked; data frames are skipped.
func answerPings(rc *rawClient) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(rc.br, h[:]); err != nil {
			return
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126, 127:
			ext := make([]byte, 2+6*(n-126))
			if _, err := io.ReadFull(rc.br, ext); err != nil {
				return
			}
			n = 0
			for _, b := range ext {
				n = n<<8 | int(b)
			}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(rc.br, payload); err != nil {
			return
		}
		if h[0]&0x0f == opPing {
			if _, err := rc.Write(clientFrame(opPong, payload)); err != nil {
				return
			}
		}
	}
}
