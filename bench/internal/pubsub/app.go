// Package pubsub is what the benchmark pub/sub apps on other WebSocket
// libraries (servers/gorilla, servers/nbio, servers/gws) share: the client
// messages (Parse, Command) and the envelope they send (Envelope), the topic
// → connections map (Registry) and running a message on it (Registry.Handle),
// the sessions count of /stats (Session), and the startup every server app
// does (Startup, Mux; servers/livepoll and servers/mizu use these two as
// well). Upgrading, reading, writing and broadcasting (Sender) stay in each
// server's main.go, in its library's terms.
package pubsub

import (
	"flag"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/livepoll/livepoll/internal/proc"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

// Startup does what every server app does first: it parses the flags -addr
// and -exit-after, raises RLIMIT_NOFILE to its hard limit and arms the
// exit-after timer (exit status 3). It returns the listen address.
func Startup() (addr string) {
	a := flag.String("addr", "127.0.0.1:8080", "listen address")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: never); a safety net for benchmark runs")
	flag.Parse()
	if _, err := proc.RaiseNOFILE(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() {
			log.Printf("exit-after %v reached", *exitAfter)
			os.Exit(3)
		})
	}
	return *a
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
