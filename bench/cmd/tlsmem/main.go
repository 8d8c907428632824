// Command tlsmem measures what one idle connection costs the server on the portable
// path (Handler on an https server: a *tls.Conn has no pollable descriptor, so the
// session gets a reader and a writer goroutine) against the event loop (the same
// Handler on a plain http server), in one run.
//
// The program re-executes itself three ways:
//
//   - server (-mode server): one live.Server whose Handler is mounted on an https
//     listener (crypto/tls, a self-signed ECDSA P-256 certificate made at start) and on
//     a plain http listener. The plain listener also serves /stats: two GCs and
//     FreeOSMemory, then VmRSS, HeapInuse, StackInuse, goroutines and fds as JSON.
//     Keepalive is off (PingInterval and IdleTimeout negative): the clients never read,
//     so they would not answer pings, and an idle connection should stay idle.
//   - client (-mode client): each stdin line N grows its fleet to N connections (wss or
//     ws, gobwas/ws Dialer, InsecureSkipVerify), spread over the source addresses
//     127.0.0.2..127.0.0.9, -conc handshakes in flight and at most -rate per second.
//     Each connection sends one subscribe to "room-<i%100>" and is then left alone: the
//     client keeps the net.Conn and runs no goroutine for it. Answers "ok N". At EOF on
//     stdin it closes everything and exits.
//   - driver (default): for each kind ("tls", "ws") it starts a fresh server and a
//     client, steps through the sizes, waits until the server counts that many sessions
//     of that kind, lets it idle for -quiesce (worker pools grown by the burst shrink
//     after 10 s), reads /stats three times keeping the minima, and fits least-squares
//     slopes against the connection count: RSS and heap+stack bytes, goroutines and fds
//     per connection. A fresh server per kind keeps one kind's leftovers (grown stack
//     and span caches) out of the other's figures; both servers are configured alike.
//
// Every process raises RLIMIT_NOFILE to its hard limit, exits by itself after -timeout,
// and children die with the driver (PDEATHSIG).
//
//	cd bench && go run ./cmd/tlsmem [-sizes 1000,2000,4000,6000] [-json out.json]
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/live"

	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

var (
	kinds   = flag.String("kinds", "tls,ws", "comma-separated kinds to measure: tls (wss to the https listener), ws (the plain listener)")
	sizes   = flag.String("sizes", "1000,2000,4000,6000", "connection counts for tls (increasing)")
	wsSizes = flag.String("ws-sizes", "", "connection counts for ws (default: -sizes)")
	jsonOut = flag.String("json", "", "also write the results as JSON to this file")
	rate    = flag.Int("rate", 2000, "new connections per second at most")
	conc    = flag.Int("conc", 32, "handshakes in flight at once")
	settle  = flag.Duration("settle", 60*time.Second, "how long to wait for the server to count a step's sessions")
	quiesce = flag.Duration("quiesce", 12*time.Second, "idle time before sampling a step")
	timeout = flag.Duration("timeout", 15*time.Minute, "every process exits after this long")
	mode    = flag.String("mode", "", "internal: server or client")
	target  = flag.String("url", "", "internal: the WebSocket URL (client mode)")
)

func main() {
	flag.Parse()
	if _, err := proc.RaiseNOFILE(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	time.AfterFunc(*timeout, func() {
		log.Printf("tlsmem %s: -timeout %v reached, exiting", *mode, *timeout)
		os.Exit(2)
	})
	var err error
	switch *mode {
	case "server":
		err = runServer()
	case "client":
		err = runClient()
	case "":
		err = run()
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// ---- server ----

// Snapshot is the JSON body of the server's /stats.
type Snapshot struct {
	srvstats.Snapshot
	TLSSessions  int64 `json:"tls_sessions"`
	WSSessions   int64 `json:"ws_sessions"`
	LiveSessions int   `json:"live_sessions"` // live.Server.Stats().Sessions
}

// sessInfo is a session's Value: which listener it came through, and whether it is
// counted yet (after its first message).
type sessInfo struct {
	tls     bool
	counted atomic.Bool
}

func runServer() error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	var tlsN, wsN atomic.Int64
	count := func(s *live.Session, d int64) {
		if si, _ := s.Value().(*sessInfo); si != nil {
			if si.tls {
				tlsN.Add(d)
			} else {
				wsN.Add(d)
			}
		}
	}
	var srv *live.Server
	srv = live.New(live.Options{
		PingInterval: -1,
		IdleTimeout:  -1,
		OnAuth: func(_ context.Context, r *http.Request) (any, error) {
			return &sessInfo{tls: r.TLS != nil}, nil
		},
		OnMessage: func(_ context.Context, s *live.Session, topic string, data []byte) {
			if topic == "subscribe" {
				var req struct {
					Topic string `json:"topic"`
				}
				if json.Unmarshal(data, &req) == nil && req.Topic != "" {
					srv.Subscribe(s, req.Topic)
				}
			}
			if si, _ := s.Value().(*sessInfo); si != nil && si.counted.CompareAndSwap(false, true) {
				count(s, 1)
			}
		},
		OnClose: func(s *live.Session, _ error) {
			if si, _ := s.Value().(*sessInfo); si != nil && si.counted.Load() {
				count(s, -1)
			}
		},
	})
	snap := func(gc bool) Snapshot {
		if gc {
			runtime.GC()
			runtime.GC()
			debug.FreeOSMemory()
		}
		s := Snapshot{Snapshot: srvstats.Take(&srvstats.Counters{}), TLSSessions: tlsN.Load(), WSSessions: wsN.Load()}
		s.Sessions = s.TLSSessions + s.WSSessions
		s.LiveSessions = srv.Stats().Sessions
		return s
	}
	plain := http.NewServeMux()
	plain.Handle("/ws", srv.Handler())
	plain.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(snap(true))
	})
	plain.HandleFunc("GET /sessions", func(w http.ResponseWriter, _ *http.Request) { // cheap, for polling
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(snap(false))
	})
	secure := http.NewServeMux()
	secure.Handle("/ws", srv.Handler())

	wsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hsPlain := &http.Server{Handler: plain, ReadHeaderTimeout: 10 * time.Second}
	hsTLS := &http.Server{
		Handler:           secure,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"http/1.1"}, // WebSocket over HTTP/1.1 only
		},
	}
	errc := make(chan error, 2)
	go func() { errc <- hsPlain.Serve(wsLn) }()
	go func() { errc <- hsTLS.ServeTLS(tlsLn, "", "") }()
	fmt.Printf("listening ws=%s tls=%s\n", wsLn.Addr(), tlsLn.Addr())
	return <-errc
}

// selfSigned makes an ECDSA P-256 certificate for 127.0.0.1 and localhost.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "tlsmem"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ---- client ----

func runClient() error {
	var conns []net.Conn
	var mu sync.Mutex
	dialer := ws.Dialer{
		Timeout:   10 * time.Second,
		TLSConfig: &tls.Config{InsecureSkipVerify: true}, // the server's self-signed certificate
	}
	dialOne := func(ctx context.Context, i int) error {
		src := wsfleet.SourceIPs[i%len(wsfleet.SourceIPs)]
		d := dialer
		d.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
			return nd.DialContext(ctx, network, addr)
		}
		var err error
		for attempt := range 3 {
			var conn net.Conn
			var br *bufio.Reader
			conn, br, _, err = d.Dial(ctx, *target)
			if err == nil {
				if br != nil {
					ws.PutReader(br) // the server sends nothing after the 101; nothing to keep
				}
				first := fmt.Appendf(nil, `{"topic":"subscribe","data":{"topic":"room-%d"}}`, i%100)
				if _, err = conn.Write(wsfleet.AppendClientFrame(nil, ws.OpText, first)); err == nil {
					mu.Lock()
					conns = append(conns, conn)
					mu.Unlock()
					return nil
				}
				conn.Close()
			}
			time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
		}
		return fmt.Errorf("dial %d from %v: %w", i, src, err)
	}

	have := 0
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil {
			return err
		}
		if err := dialRange(have, n, dialOne); err != nil {
			fmt.Printf("err %v\n", err)
			continue
		}
		have = n
		fmt.Printf("ok %d\n", n)
	}
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// dialRange runs dial for i in [from, to) with -conc workers, paced to -rate per second
// in 10 ms batches. The first error stops it.
func dialRange(from, to int, dial func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(1, *conc) {
		wg.Go(func() {
			for i := range jobs {
				if ctx.Err() == nil {
					if err := dial(ctx, i); err != nil {
						cancel(err)
					}
				}
			}
		})
	}
	const tick = 10 * time.Millisecond
	perTick := max(1, *rate/int(time.Second/tick))
	next := time.Now()
	for i := from; i < to && ctx.Err() == nil; {
		for k := 0; k < perTick && i < to; k++ {
			jobs <- i
			i++
		}
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// ---- driver ----

// Step is one measured connection count.
type Step struct {
	Conns      int        `json:"conns"`
	RSS        uint64     `json:"rss_bytes"`  // minimum of three samples
	HeapStack  uint64     `json:"heap_stack"` // heap_inuse+stack_inuse, minimum of three
	Goroutines int        `json:"goroutines"` // minimum of three
	FDs        int        `json:"fds"`        // minimum of three
	Samples    []Snapshot `json:"samples"`
}

// Result is one kind's run.
type Result struct {
	Kind              string  `json:"kind"`
	Idle              Step    `json:"idle"`
	Steps             []Step  `json:"steps"`
	RSSPerConn        float64 `json:"rss_bytes_per_conn"`
	HeapStackPerConn  float64 `json:"heap_stack_bytes_per_conn"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	FDsPerConn        float64 `json:"fds_per_conn"`
	Error             string  `json:"error,omitempty"`
}

func parseSizes(s string) ([]int, error) {
	var ns []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || (len(ns) > 0 && n <= ns[len(ns)-1]) {
			return nil, fmt.Errorf("bad size list %q: positive, increasing integers", s)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

func run() error {
	tlsNs, err := parseSizes(*sizes)
	if err != nil {
		return err
	}
	wsNs := tlsNs
	if *wsSizes != "" {
		if wsNs, err = parseSizes(*wsSizes); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "tlsmem-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var results []Result
	for kind := range strings.SplitSeq(*kinds, ",") {
		kind = strings.TrimSpace(kind)
		ns := tlsNs
		switch kind {
		case "tls":
		case "ws":
			ns = wsNs
		default:
			return fmt.Errorf("unknown kind %q", kind)
		}
		r := Result{Kind: kind}
		if err := measure(self, tmp, kind, ns, &r); err != nil {
			r.Error = err.Error()
			log.Printf("%s: FAILED: %v", kind, err)
		}
		results = append(results, r)
	}
	printTable(os.Stdout, results)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// startChild starts this binary in a mode with stdin and stdout piped.
func startChild(self, logPath string, args ...string) (*harness.Child, io.WriteCloser, <-chan string, error) {
	var stdin io.WriteCloser
	var stdout *bufio.Reader
	c, err := harness.Start(self, append(args, "-timeout", timeout.String()), logPath, func(c *exec.Cmd) error {
		var err error
		if stdin, err = c.StdinPipe(); err != nil {
			return err
		}
		out, err := c.StdoutPipe()
		stdout = bufio.NewReader(out)
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return c, stdin, harness.Lines(stdout), nil
}

func measure(self, tmp, kind string, ns []int, r *Result) error {
	server, _, srvOut, err := startChild(self, filepath.Join(tmp, kind+"-server.log"), "-mode", "server")
	if err != nil {
		return err
	}
	defer server.Stop(5 * time.Second)
	var wsAddr, tlsAddr string
	select {
	case line := <-srvOut:
		for f := range strings.FieldsSeq(strings.TrimPrefix(line, "listening")) {
			if v, ok := strings.CutPrefix(f, "ws="); ok {
				wsAddr = v
			} else if v, ok := strings.CutPrefix(f, "tls="); ok {
				tlsAddr = v
			}
		}
	case <-time.After(15 * time.Second):
	}
	if wsAddr == "" || tlsAddr == "" {
		return fmt.Errorf("server did not start; stderr:\n%s", server.LogTail(20))
	}
	fail := func(err error) error {
		return fmt.Errorf("%w\nserver stderr (tail):\n%s", err, server.LogTail(10))
	}
	if r.Idle, err = sample(wsAddr, kind, 0); err != nil {
		return fail(err)
	}
	url := "ws://" + wsAddr + "/ws"
	if kind == "tls" {
		url = "wss://" + tlsAddr + "/ws"
	}
	client, stdin, replies, err := startChild(self, filepath.Join(tmp, kind+"-client.log"),
		"-mode", "client", "-url", url, "-rate", strconv.Itoa(*rate), "-conc", strconv.Itoa(*conc))
	if err != nil {
		return err
	}
	defer func() {
		stdin.Close() // the client closes its connections and exits
		if err := client.Wait(20 * time.Second); err != nil {
			log.Printf("%s: client: %v", kind, err)
		}
	}()
	for _, n := range ns {
		start := time.Now()
		fmt.Fprintf(stdin, "%d\n", n)
		dialFor := time.Duration(n)*time.Second/time.Duration(max(*rate, 1)) + 2*time.Minute
		select {
		case line, ok := <-replies:
			if !ok {
				return fail(fmt.Errorf("client exited at step %d; client stderr:\n%s", n, client.LogTail(10)))
			}
			if !strings.HasPrefix(line, "ok") {
				return fail(fmt.Errorf("client at step %d: %s", n, line))
			}
		case <-time.After(dialFor):
			return fail(fmt.Errorf("client did not open %d connections within %v", n, dialFor))
		}
		if err := waitSessions(wsAddr, kind, int64(n), *settle); err != nil {
			return fail(err)
		}
		time.Sleep(*quiesce)
		st, err := sample(wsAddr, kind, n)
		if err != nil {
			return fail(err)
		}
		r.Steps = append(r.Steps, st)
		log.Printf("%s: %5d conns  rss %6.1f MiB  heap+stack %6.1f MiB  goroutines %6d  fds %6d  (%.1fs)",
			kind, n, mib(st.RSS), mib(st.HeapStack), st.Goroutines, st.FDs, time.Since(start).Seconds())
	}
	var xs, rss, hs, gs, fds []float64
	for _, st := range r.Steps {
		xs = append(xs, float64(st.Conns))
		rss = append(rss, float64(st.RSS))
		hs = append(hs, float64(st.HeapStack))
		gs = append(gs, float64(st.Goroutines))
		fds = append(fds, float64(st.FDs))
	}
	r.RSSPerConn, _ = harness.Fit(xs, rss)
	r.HeapStackPerConn, _ = harness.Fit(xs, hs)
	r.GoroutinesPerConn, _ = harness.Fit(xs, gs)
	r.FDsPerConn, _ = harness.Fit(xs, fds)
	return nil
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

func fetch(addr, path string) (Snapshot, error) {
	var s Snapshot
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func sessionsOf(s Snapshot, kind string) int64 {
	if kind == "tls" {
		return s.TLSSessions
	}
	return s.WSSessions
}

func waitSessions(addr, kind string, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := fetch(addr, "/sessions")
		if err == nil && sessionsOf(s, kind) == want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("waiting for %d %s sessions: %w", want, kind, err)
			}
			return fmt.Errorf("waiting for %d %s sessions: server counts %d after %v", want, kind, sessionsOf(s, kind), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sample reads /stats three times and keeps the minima.
func sample(addr, kind string, n int) (Step, error) {
	st := Step{Conns: n}
	for i := range 3 {
		s, err := fetch(addr, "/stats")
		if err != nil {
			return st, err
		}
		if got := sessionsOf(s, kind); got != int64(n) {
			return st, fmt.Errorf("%s sessions changed to %d while sampling %d", kind, got, n)
		}
		hs := s.HeapInuse + s.StackInuse
		if i == 0 {
			st.RSS, st.HeapStack, st.Goroutines, st.FDs = s.RSSBytes, hs, s.Goroutines, s.FDs
		}
		st.RSS, st.HeapStack = min(st.RSS, s.RSSBytes), min(st.HeapStack, hs)
		st.Goroutines, st.FDs = min(st.Goroutines, s.Goroutines), min(st.FDs, s.FDs)
		st.Samples = append(st.Samples, s)
	}
	return st, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func printTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "kind\tidle RSS\tsteps (conns: RSS)\tRSS B/conn\theap+stack B/conn\tgoroutines/conn\tfds/conn\t\n")
	for _, r := range results {
		var steps []string
		for _, st := range r.Steps {
			steps = append(steps, fmt.Sprintf("%d:%.1fM", st.Conns, mib(st.RSS)))
		}
		fmt.Fprintf(tw, "%s\t%.1fM\t%s\t", r.Kind, mib(r.Idle.RSS), strings.Join(steps, " "))
		if r.Error != "" || len(r.Steps) < 2 {
			fmt.Fprint(tw, "FAILED\t-\t-\t-\t\n")
			continue
		}
		fmt.Fprintf(tw, "%.0f\t%.0f\t%.2f\t%.2f\t\n", r.RSSPerConn, r.HeapStackPerConn, r.GoroutinesPerConn, r.FDsPerConn)
	}
	tw.Flush()
	var t, p *Result
	for i := range results {
		if results[i].Error == "" && len(results[i].Steps) >= 2 {
			switch results[i].Kind {
			case "tls":
				t = &results[i]
			case "ws":
				p = &results[i]
			}
		}
	}
	if t != nil && p != nil && p.RSSPerConn > 0 && p.HeapStackPerConn > 0 {
		fmt.Fprintf(w, "tls/ws: RSS per conn %.1fx, heap+stack per conn %.1fx\n",
			t.RSSPerConn/p.RSSPerConn, t.HeapStackPerConn/p.HeapStackPerConn)
	}
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(w, "%s failed: %s\n", r.Kind, r.Error)
		}
	}
}
