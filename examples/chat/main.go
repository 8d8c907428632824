// Command chat is a small chat on livepoll: rooms, who is in them, and a web page. It
// uses the live API as its docs show it: OnAuth takes the user's name, OnMessage switches
// on the topic, Subscribe and Publish carry the rooms, OnClose announces the leaves.
//
//	go run .                                  # one node on http://127.0.0.1:8080
//	go run . -addr 127.0.0.1:8081 -broker nats://127.0.0.1:4222
//
// Nodes started with the same -broker share their rooms. README.md has the details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	broker := flag.String("broker", "", "share the rooms with other nodes through this broker: nats://host:port or redis://host:port (default: this process only)")
	refresh := flag.Duration("refresh", 15*time.Second, "how often a node republishes who of its users is in which room; pages forget a member not heard of for 3 times this")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "chat: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if *refresh <= 0 {
		fmt.Fprintln(os.Stderr, "chat: -refresh must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *broker, *refresh); err != nil {
		log.Fatalf("chat: %v", err)
	}
}

// run serves the chat until ctx ends, then closes the sessions (announcing their leaves to
// the other nodes) and the broker connection.
func run(ctx context.Context, addr, brokerURL string, refresh time.Duration) error {
	b, closeBroker, err := openBroker(brokerURL)
	if err != nil {
		return err
	}
	defer closeBroker()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	n := newNode(nodeOptions{Broker: b, Refresh: refresh})
	hs := &http.Server{Handler: n.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if brokerURL == "" {
		log.Printf("chat: open http://%s/ (single node)", ln.Addr())
	} else {
		log.Printf("chat: open http://%s/ (rooms shared through %s)", ln.Addr(), brokerURL)
	}

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	log.Printf("chat: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The HTTP server first, so no new session starts; upgraded sessions are not its own.
	return errors.Join(err, hs.Shutdown(shutdownCtx), n.shutdown(shutdownCtx))
}
