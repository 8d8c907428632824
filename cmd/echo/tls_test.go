package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/internal/testcert"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key as PEM files.
func writeTestCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	c := testcert.New(t, "echo test")
	certFile, keyFile = c.WritePEM(t)
	return certFile, keyFile, c.Roots
}

// -cert and -key: echo serves wss:// on its own TLS, and stops cleanly.
func TestEchoOverTLS(t *testing.T) {
	certFile, keyFile, roots := writeTestCert(t)
	cfg, err := tlsConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlsConfig(certFile, ""); err == nil {
		t.Fatal("-cert without -key accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runTLS(ctx, ln, 16<<20, cfg) }()

	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots}, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("wss://"+ln.Addr().String()+"/", nil)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	for _, data := range [][]byte{[]byte("hello"), bytes.Repeat([]byte("0123456789abcdef"), 1<<16)} {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := c.WriteMessage(websocket.BinaryMessage, data); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("echo of %d bytes: %d back, %v", len(data), len(got), err)
		}
	}
	c.Close()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runTLS: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return")
	}
}
