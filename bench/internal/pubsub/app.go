// Package pubsub is what the benchmark pub/sub apps on other WebSocket
// libraries (servers/gorilla, servers/nbio, servers/gws) share: the client
// messages (Parse, Command) and the envelope they send (Envelope), the topic
// → connections map (Registry) and running a message on it (Registry.Handle),
// the sessions count of /stats (Session), and the startup every server app
// does (Startup, Mux; servers/livepoll and servers/mizu use these two as
// well). Upgrading, reading, writing and broadcasting (Sender) stay in each
// server's main.go, in its library's terms, and so does serving wss:// where the
// library has its own way (livepoll's ServeTLS, nbio's TLS on its loop); the apps on
// net/http serve through Listen.ListenAndServe.
package pubsub

import (
	"crypto/tls"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/livepoll/livepoll/internal/proc"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

// Listen says where a server app serves, from its flags.
//
// Without -cert and -key the app serves ws:// at /ws, and /stats and /debug/pprof/, as
// plain HTTP on Addr. With them it serves wss:// on Addr (TLS with the certificate in
// those PEM files, the library's own way: see each main.go) and the same routes as plain
// HTTP on StatsAddr (-stats-addr, required with -cert), where the drivers read /stats
// and heap profiles with a plain HTTP client whichever way the WebSocket side is served
// (livepoll's ServeTLS serves WebSocket upgrades only).
type Listen struct {
	Addr              string // -addr
	CertFile, KeyFile string // -cert, -key: both or neither
	StatsAddr         string // -stats-addr: plain HTTP beside wss
}

// TLS reports whether the app serves wss://.
func (l Listen) TLS() bool { return l.CertFile != "" }

// Startup does what every server app does first: it parses the flags -addr,
// -exit-after, -cert, -key and -stats-addr, raises RLIMIT_NOFILE to its hard limit and
// arms the exit-after timer (exit status 3). It returns where to listen.
func Startup() Listen {
	var l Listen
	flag.StringVar(&l.Addr, "addr", "127.0.0.1:8080", "listen address (ws://, or wss:// with -cert and -key)")
	flag.StringVar(&l.CertFile, "cert", "", "serve wss:// on -addr with this PEM certificate (and -key); /stats moves to -stats-addr")
	flag.StringVar(&l.KeyFile, "key", "", "the PEM private key of -cert")
	flag.StringVar(&l.StatsAddr, "stats-addr", "", "plain HTTP address for /stats and /debug/pprof/ (needed with -cert, and with livepoll's -serve; without them they are on -addr as well)")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: never); a safety net for benchmark runs")
	flag.Parse()
	if (l.CertFile == "") != (l.KeyFile == "") {
		log.Fatal("-cert and -key go together")
	}
	if l.TLS() && l.StatsAddr == "" {
		log.Fatal("-cert needs -stats-addr (/stats is served as plain HTTP there)")
	}
	if _, err := proc.RaiseNOFILE(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() {
			log.Printf("exit-after %v reached", *exitAfter)
			os.Exit(3)
		})
	}
	return l
}

// ListenAndServe serves mux as the apps on net/http do (mizu, gorilla, gws): on Addr
// with http.ListenAndServe, or, with TLS, with net/http's own TLS (http.Server.ServeTLS,
// crypto/tls: TLS 1.3 with Go clients, ALPN http/1.1 only, HTTP/2 off, since WebSocket
// upgrades are HTTP/1.1) and plain on StatsAddr. It returns only on an error.
func (l Listen) ListenAndServe(mux http.Handler) error {
	if !l.TLS() {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			return err
		}
		if l.StatsAddr != "" {
			l.ServeStats(mux)
		}
		return http.Serve(ln, mux)
	}
	// The certificate is loaded before /stats answers, so a bad one fails the start
	// instead of every client's dial.
	cert, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return err
	}
	l.ServeStats(mux)
	srv := &http.Server{
		Handler:   mux,
		TLSConfig: &tls.Config{NextProtos: []string{"http/1.1"}, Certificates: []tls.Certificate{cert}},
		// A non-nil TLSNextProto turns HTTP/2 off (net/http's documented switch).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	return srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
}

// ServeStats serves mux as plain HTTP on StatsAddr, on its own goroutine (a failure
// ends the process). Call it once the wss listener is bound: the drivers take an
// answer on /stats to mean the app is up.
func (l Listen) ServeStats(mux http.Handler) {
	ln, err := net.Listen("tcp", l.StatsAddr)
	if err != nil {
		log.Fatalf("stats listener: %v", err)
	}
	go func() { log.Fatalf("stats listener: %v", http.Serve(ln, mux)) }()
}

// Mux serves ws at /ws, counters at GET /stats and GET /debug/pprof/
// (goroutine dumps when a run goes wrong).
func Mux(ws http.Handler, counters *stats.Counters) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	mux.Handle("GET /stats", stats.Handler(counters))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile) // CPU profiles of a load run
	return mux
}
