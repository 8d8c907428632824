package interop

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/live"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const (
	// pingInterval and idleTimeout are short so that a client that stays silent for idle
	// is closed unless it answers the server's pings (the keepalive wheel has 1 s slots).
	pingInterval = 1 * time.Second
	idleTimeout  = 3 * time.Second
	idle         = 4500 * time.Millisecond

	waitTimeout = 10 * time.Second
)

// app is a running server: its URLs and what OnClose received, by session name.
type app struct {
	base     string // http://127.0.0.1:port
	wsURL    string // ws://127.0.0.1:port/ws
	srv      *live.Server
	compress bool // Options.Compression
	mu       sync.Mutex
	closes   map[string]error
	closed   chan string
}

// runServer starts live.New + Handler on an httptest server on 127.0.0.1 with the test
// app: "subscribe" {"topic":T} subscribes and acknowledges with "subscribed"; "publish"
// {"topic":T,"data":D} publishes D to T; "echo" sends the message back; "close" closes the
// session. Sessions are named by the name query parameter (OnAuth). The same server
// serves page.html and checks.mjs for the browser, so the page is same-origin.
func runServer(t *testing.T) *app { return runServerWith(t, false) }

// runServerWith is runServer with or without Options.Compression.
func runServerWith(t *testing.T, compress bool) *app {
	t.Helper()
	a := &app{closes: map[string]error{}, closed: make(chan string, 64), compress: compress}
	var srv *live.Server
	srv = live.New(live.Options{
		Compression:  compress,
		PingInterval: pingInterval,
		IdleTimeout:  idleTimeout,
		OnAuth: func(ctx context.Context, r *http.Request) (any, error) {
			return r.URL.Query().Get("name"), nil
		},
		OnMessage: func(ctx context.Context, s *live.Session, topic string, data []byte) {
			switch topic {
			case "subscribe":
				var req struct {
					Topic string `json:"topic"`
				}
				if err := json.Unmarshal(data, &req); err != nil {
					t.Errorf("subscribe %s: %v", data, err)
					return
				}
				srv.Subscribe(s, req.Topic)
				s.Send(live.Message{Topic: "subscribed", Data: data})
			case "publish":
				var req struct {
					Topic string          `json:"topic"`
					Data  json.RawMessage `json:"data"`
				}
				if err := json.Unmarshal(data, &req); err != nil {
					t.Errorf("publish %s: %v", data, err)
					return
				}
				srv.Publish(req.Topic, req.Data)
			case "echo":
				s.Send(live.Message{Topic: "echo", Data: data})
			case "close":
				s.Close()
			}
		},
		OnClose: func(s *live.Session, err error) {
			name, _ := s.Value().(string)
			a.mu.Lock()
			a.closes[name] = err
			a.mu.Unlock()
			a.closed <- name
		},
	})
	mux := http.NewServeMux()
	mux.Handle("/ws", srv.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join("js", "page.html"))
	})
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/js/checks.mjs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, filepath.Join("js", "checks.mjs"))
	})
	hs := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("live.Server.Close: %v", err)
		}
	})
	a.srv = srv
	a.base = hs.URL
	a.wsURL = "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	return a
}

// waitClosed waits until OnClose has run for every name and returns what it received.
func (a *app) waitClosed(t *testing.T, names ...string) map[string]error {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		a.mu.Lock()
		done := true
		for _, n := range names {
			if _, ok := a.closes[n]; !ok {
				done = false
			}
		}
		if done {
			out := make(map[string]error, len(names))
			for _, n := range names {
				out[n] = a.closes[n]
			}
			a.mu.Unlock()
			return out
		}
		a.mu.Unlock()
		select {
		case <-a.closed:
		case <-timer.C:
			t.Fatalf("timed out waiting for OnClose of %v", names)
		}
	}
}
