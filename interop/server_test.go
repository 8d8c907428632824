package interop

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/internal/testcert"
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
	wssURL   string // wss://127.0.0.1:port2/ws: the same server through ServeTLS
	caFile   string // PEM of the certificate wssURL presents (self-signed)
	srv      *live.Server
	compress bool // Options.Compression
	mu       sync.Mutex
	closes   map[string]error
	// upgrades counts the sessions OnAuth admitted, tlsUpgrades those that came over wss.
	upgrades, tlsUpgrades int
	closed                chan string
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
		Compression: compress,
		// Same-origin as by default, and the page served by the http server may open
		// the wss URL on the other port.
		CheckOrigin: func(r *http.Request) bool {
			o := r.Header.Get("Origin")
			return o == "" || o == a.base || o == "http://"+r.Host
		},
		PingInterval: pingInterval,
		IdleTimeout:  idleTimeout,
		OnAuth: func(ctx context.Context, r *http.Request) (any, error) {
			a.mu.Lock()
			a.upgrades++
			if r.TLS != nil {
				a.tlsUpgrades++
			}
			a.mu.Unlock()
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
	hs := httptest.NewUnstartedServer(mux) // listens on 127.0.0.1
	a.base = "http://" + hs.Listener.Addr().String()
	hs.Start()
	cfg, caFile := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, cfg) }()
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("live.Server.Close: %v", err)
		}
		if err := <-served; !errors.Is(err, live.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	a.srv = srv
	a.wsURL = "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	a.wssURL = "wss://" + ln.Addr().String() + "/ws"
	a.caFile = caFile
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

// selfSigned makes a certificate for 127.0.0.1 that is its own CA, and writes it to a PEM
// file that clients can be told to trust (NODE_EXTRA_CA_CERTS).
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	c := testcert.New(t, "livepoll interop")
	file, _ := c.WritePEM(t)
	return c.ServerConfig(), file
}

// allOverTLS checks that every session came through ServeTLS.
func (a *app) allOverTLS(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.upgrades == 0 || a.tlsUpgrades != a.upgrades {
		t.Errorf("%d of %d sessions came over wss", a.tlsUpgrades, a.upgrades)
	}
}
