package testcert

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// A client with ClientConfig completes a handshake with a server using ServerConfig, and
// the PEM files load back into the same certificate.
func TestHandshakeAndPEM(t *testing.T) {
	c := New(t, "testcert")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			err = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
		done <- err
	}()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: c.ClientConfig()}
	conn, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server handshake: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server handshake did not end")
	}
	certFile, keyFile := c.WritePEM(t)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(pair.Certificate[0]) != string(c.TLS.Certificate[0]) {
		t.Fatal("the PEM file holds another certificate")
	}
}

// Make's certificate is valid for the time asked, from an hour before now, for
// 127.0.0.1 and localhost.
func TestMakeValidity(t *testing.T) {
	before := time.Now()
	c, err := Make("testcert", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.TLS.Leaf
	if leaf.NotAfter.Before(before.Add(24*time.Hour-time.Second)) || leaf.NotAfter.After(time.Now().Add(24*time.Hour)) {
		t.Errorf("NotAfter %v, want 24 h after %v", leaf.NotAfter, before)
	}
	if !leaf.NotBefore.Before(before) {
		t.Errorf("NotBefore %v, not before %v", leaf.NotBefore, before)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}
