// Command echo is a WebSocket echo server on livepoll's event loop: every text and binary
// message (up to 16 MiB by default) is sent back unchanged, pings are answered, closes are
// answered. It runs the same session engine as package live, so protocol conformance
// suites (the Autobahn testsuite's fuzzingclient, for one) can be pointed at it. It
// negotiates permessage-deflate with clients that offer it (Autobahn's sections 12 and
// 13) unless -compress=false.
//
//	go run ./cmd/echo -addr 127.0.0.1:9001
//
// With -cert and -key (PEM files) it serves wss:// instead, terminating TLS on the event
// loop itself (live's Server.ServeTLS; tls.go):
//
//	go run ./cmd/echo -addr 127.0.0.1:9443 -cert cert.pem -key key.pem
package main

import (
	"context"
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
	_ "github.com/livepoll/livepoll/live" // installs rawecho.New
)

func main() {
	certFile := flag.String("cert", "", "PEM certificate (chain) file: serve wss:// with -key")
	keyFile := flag.String("key", "", "PEM private key file for -cert")
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	limit := flag.Int("limit", 16<<20, "largest message accepted, in bytes")
	compress := flag.Bool("compress", true, "negotiate permessage-deflate with clients that offer it")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *certFile != "" || *keyFile != "" {
		if err := serveTLS(ln, *limit, *certFile, *keyFile); err != nil {
			log.Fatal(err)
		}
		return
	}
	log.Printf("echo: listening on ws://%s/", ln.Addr())
	if err := run(ln, *limit, *compress); err != nil {
		log.Fatal(err)
	}
}

// run serves until SIGINT or SIGTERM, then closes every session.
func run(ln net.Listener, limit int, compress bool) error {
	srv := rawecho.New(limit)
	hs := newHTTPServer(srv, compress)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if err := hs.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return srv.Close()
}

// newHTTPServer serves srv's upgrades. The echo engine negotiates compression with any
// client that offers it; without compress the offers are removed before it sees them.
func newHTTPServer(srv rawecho.Server, compress bool) *http.Server {
	h := srv.Handler()
	if !compress {
		upgrade := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("Sec-WebSocket-Extensions")
			upgrade.ServeHTTP(w, r)
		})
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}
