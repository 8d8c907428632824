package live_test

import (
	"context"
	"crypto/tls"
	"log"
	"net"

	"github.com/livepoll/livepoll/live"
)

// Serving wss:// from the event loop: ServeTLS accepts, runs crypto/tls's handshake and
// then carries the records itself, so idle wss sessions cost no goroutine.
func ExampleServer_ServeTLS() {
	cert, err := tls.LoadX509KeyPair("cert.pem", "key.pem")
	if err != nil {
		log.Fatal(err)
	}
	server := live.New(live.Options{
		OnMessage: func(ctx context.Context, s *live.Session, topic string, data []byte) {
			s.Send(live.Message{Topic: topic, Data: data})
		},
	})
	ln, err := net.Listen("tcp", ":8443")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(server.ServeTLS(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
}
