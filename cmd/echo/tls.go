package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/livepoll/livepoll/internal/rawecho"
	"github.com/livepoll/livepoll/live"
)

// serveTLS serves wss:// on ln with the certificate and key in certFile and keyFile until
// SIGINT or SIGTERM.
func serveTLS(ln net.Listener, limit int, certFile, keyFile string) error {
	cfg, err := tlsConfig(certFile, keyFile)
	if err != nil {
		return err
	}
	log.Printf("echo: listening on wss://%s/", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runTLS(ctx, ln, limit, cfg)
}

// tlsConfig loads -cert and -key.
func tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// runTLS serves wss:// through the echo server's own TLS (ServeTLS) until ctx ends, then
// closes every session.
func runTLS(ctx context.Context, ln net.Listener, limit int, cfg *tls.Config) error {
	srv := rawecho.New(limit).(*live.Server)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, cfg) }()
	select {
	case err := <-errc:
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	err := srv.Close()
	if serr := <-errc; !errors.Is(serr, live.ErrServerClosed) {
		return serr
	}
	return err
}
