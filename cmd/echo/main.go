// Command echo is a WebSocket echo server on livepoll's event loop: every text and binary
// message (up to 16 MiB by default) is sent back unchanged, pings are answered, closes are
// answered. It runs the same session engine as package live, so protocol conformance
// suites (the Autobahn testsuite's fuzzingclient, for one) can be pointed at it.
//
//	go run ./cmd/echo -addr 127.0.0.1:9001
//
// With -cert and -key (PEM files) it serves wss:// instead, terminating TLS on the event
// loop itself (live's Server.ServeTLS):
//
//	go run ./cmd/echo -addr 127.0.0.1:9443 -cert cert.pem -key key.pem
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/livepoll/livepoll/internal/rawecho"
	"github.com/livepoll/livepoll/live" // also installs rawecho.New
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	limit := flag.Int("limit", 16<<20, "largest message accepted, in bytes")
	certFile := flag.String("cert", "", "PEM certificate (chain) file: serve wss:// with -key")
	keyFile := flag.String("key", "", "PEM private key file for -cert")
	flag.Parse()

	cfg, err := tlsConfig(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	scheme := "ws"
	if cfg != nil {
		scheme = "wss"
	}
	log.Printf("echo: listening on %s://%s/", scheme, ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, ln, *limit, cfg); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx ends (SIGINT or SIGTERM), then closes every session. With cfg it
// serves wss:// through the server's own TLS (ServeTLS), else ws:// through net/http.
func run(ctx context.Context, ln net.Listener, limit int, cfg *tls.Config) error {
	srv := rawecho.New(limit)
	errc := make(chan error, 1)
	var hs *http.Server
	if cfg != nil {
		go func() { errc <- srv.(*live.Server).ServeTLS(ln, cfg) }()
	} else {
		hs = newHTTPServer(srv)
		go func() { errc <- hs.Serve(ln) }()
	}
	select {
	case err := <-errc:
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	if hs != nil {
		if err := hs.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	err := srv.Close()
	if cfg != nil {
		if serr := <-errc; !errors.Is(serr, live.ErrServerClosed) {
			return serr
		}
	}
	return err
}

// tlsConfig loads -cert and -key; with neither it returns nil (plain ws://).
func tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

func newHTTPServer(srv rawecho.Server) *http.Server {
	return &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
}
