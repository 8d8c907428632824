// Command tlsmem measures what one idle connection costs the server on the portable
// path (Handler on an https server: a *tls.Conn has no pollable descriptor, so the
// session gets a reader and a writer goroutine), on the event loop over wss
// (Server.ServeTLS: livepoll's own record layer) and on the event loop over ws (the same
// Handler on a plain http server), in one run.
//
// The program re-executes itself three ways:
//
//   - server (-mode server): one live.Server whose Handler is mounted on an https
//     listener (crypto/tls, a self-signed ECDSA P-256 certificate made at start) and on
//     a plain http listener, and which serves a third listener with ServeTLS (same
//     certificate). Without keepalive no read ends a silence, so ServeTLS sessions are
//     measured before their keys are compacted (docs/tls.md). The plain listener also serves /stats: two GCs and
//     FreeOSMemory, then VmRSS, HeapInuse, StackInuse, goroutines and fds as JSON.
//     Keepalive is off (PingInterval and IdleTimeout negative): the clients never read,
//     so they would not answer pings, and an idle connection should stay idle.
//   - client (-mode client): each stdin line N grows its fleet to N connections (wss or
//     ws, gobwas/ws Dialer, InsecureSkipVerify), spread over the source addresses
//     127.0.0.2..127.0.0.9, -conc handshakes in flight and at most -rate per second.
//     Each connection sends one subscribe to "room-<i%100>" and is then left alone: the
//     client keeps the net.Conn and runs no goroutine for it. Answers "ok N". At EOF on
//     stdin it closes everything and exits.
//   - driver (default): for each kind ("tls", "loop", "ws") it starts a fresh server and a
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
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/live"

	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/bench/internal/slope"
	"github.com/livepoll/livepoll/bench/internal/tlscert"
	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

var (
	kinds   = flag.String("kinds", "tls,loop,ws", "comma-separated kinds to measure: tls (wss to Handler on an https listener: the portable path), loop (wss to Server.ServeTLS: the event loop), ws (the plain listener)")
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
	c, err := tlscert.New("tlsmem")
	if err != nil {
		return err
	}
	cert := c.TLS
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
	loopLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	errc := make(chan error, 3)
	go func() { errc <- hsPlain.Serve(wsLn) }()
	go func() { errc <- hsTLS.ServeTLS(tlsLn, "", "") }()
	go func() { errc <- srv.ServeTLS(loopLn, &tls.Config{Certificates: []tls.Certificate{cert}}) }()
	fmt.Printf("listening ws=%s tls=%s loop=%s\n", wsLn.Addr(), tlsLn.Addr(), loopLn.Addr())
	return <-errc
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
		err := wsfleet.Retry(ctx, 3, 10*time.Second, func(ctx context.Context) error {
			conn, br, _, err := d.Dial(ctx, *target)
			if err != nil {
				return err
			}
			if br != nil {
				ws.PutReader(br) // the server sends nothing after the 101; nothing to keep
			}
			first := fmt.Appendf(nil, `{"topic":"subscribe","data":{"topic":"room-%d"}}`, i%100)
			if _, err := conn.Write(wsfleet.AppendClientFrame(nil, ws.OpText, first)); err != nil {
				conn.Close()
				return err
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			return nil
		})
		if err == nil {
			return nil
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
		if err := wsfleet.Paced(context.Background(), have, n, *conc, max(1, *rate), dialOne); err != nil {
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

// ---- driver ----

// Step is one measured connection count; its goroutines and fds are the
// minima of the three samples.
type Step = slope.Step[Snapshot]

// Result is one kind's run.
type Result struct {
	Kind string `json:"kind"`
	slope.Result[Snapshot]
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
		case "tls", "loop":
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
func startChild(self, logPath string, args ...string) (*harness.Piped, error) {
	return harness.StartPiped(self, append(args, "-timeout", timeout.String()), logPath)
}

func measure(self, tmp, kind string, ns []int, r *Result) error {
	server, err := startChild(self, filepath.Join(tmp, kind+"-server.log"), "-mode", "server")
	if err != nil {
		return err
	}
	defer server.Stop(5 * time.Second)
	var wsAddr, tlsAddr, loopAddr string
	select {
	case line := <-server.Replies:
		for f := range strings.FieldsSeq(strings.TrimPrefix(line, "listening")) {
			if v, ok := strings.CutPrefix(f, "ws="); ok {
				wsAddr = v
			} else if v, ok := strings.CutPrefix(f, "tls="); ok {
				tlsAddr = v
			} else if v, ok := strings.CutPrefix(f, "loop="); ok {
				loopAddr = v
			}
		}
	case <-time.After(15 * time.Second):
	}
	if wsAddr == "" || tlsAddr == "" || loopAddr == "" {
		return fmt.Errorf("server did not start; stderr:\n%s", server.LogTail(20))
	}
	fail := func(err error) error {
		return fmt.Errorf("%w\nserver stderr (tail):\n%s", err, server.LogTail(10))
	}
	if r.Idle, err = sample(wsAddr, kind, 0); err != nil {
		return fail(err)
	}
	url := "ws://" + wsAddr + "/ws"
	switch kind {
	case "tls":
		url = "wss://" + tlsAddr + "/ws"
	case "loop":
		url = "wss://" + loopAddr + "/ws"
	}
	client, err := startChild(self, filepath.Join(tmp, kind+"-client.log"),
		"-mode", "client", "-url", url, "-rate", strconv.Itoa(*rate), "-conc", strconv.Itoa(*conc))
	if err != nil {
		return err
	}
	defer func() {
		client.Stdin.Close() // the client closes its connections and exits
		if err := client.Wait(20 * time.Second); err != nil {
			log.Printf("%s: client: %v", kind, err)
		}
	}()
	for _, n := range ns {
		start := time.Now()
		if err := slope.Grow(client, n, *rate); err != nil {
			return fail(err)
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
			kind, n, slope.MiB(st.RSS), slope.MiB(st.HeapStack), st.Goroutines, st.FDs, time.Since(start).Seconds())
	}
	r.Fit()
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
	if kind == "tls" || kind == "loop" { // both come over TLS (r.TLS is set)
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
	return slope.Sample(n, slope.MinCounts, func() (Snapshot, srvstats.Snapshot, error) {
		s, err := fetch(addr, "/stats")
		if got := sessionsOf(s, kind); err == nil && got != int64(n) {
			err = fmt.Errorf("%s sessions changed to %d while sampling %d", kind, got, n)
		}
		return s, s.Snapshot, err
	})
}

func printTable(w io.Writer, results []Result) {
	var rows []slope.Row[Snapshot]
	for i := range results {
		r := &results[i]
		var steps []string
		for _, st := range r.Steps {
			steps = append(steps, fmt.Sprintf("%d:%.1fM", st.Conns, slope.MiB(st.RSS)))
		}
		cells := fmt.Sprintf("%.1fM\t%s\t", slope.MiB(r.Idle.RSS), strings.Join(steps, " "))
		rows = append(rows, slope.Row[Snapshot]{Name: r.Kind, Cells: cells, Result: &r.Result})
	}
	slope.PrintTable(w, "kind\tidle RSS\tsteps (conns: RSS)\t", rows, func(fitted map[string]*slope.Result[Snapshot]) string {
		p := fitted["ws"]
		if p == nil || !(p.RSSPerConn > 0 && p.HeapStackPerConn > 0) {
			return ""
		}
		var out strings.Builder
		for _, k := range []string{"tls", "loop"} {
			if t := fitted[k]; t != nil {
				fmt.Fprintf(&out, "%s/ws: RSS per conn %.1fx, heap+stack per conn %.1fx\n",
					k, t.RSSPerConn/p.RSSPerConn, t.HeapStackPerConn/p.HeapStackPerConn)
			}
		}
		return out.String()
	})
}
