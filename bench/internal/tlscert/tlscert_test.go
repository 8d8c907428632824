package tlscert

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// A client with LoadClientConfig(the written PEM) completes a TLS 1.3 handshake with
// ALPN http/1.1 against a server with the files' key pair.
func TestMakeAndLoad(t *testing.T) {
	dir := t.TempDir()
	_, files, err := Make(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	client, err := LoadClientConfig(files.Cert)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			err = c.(*tls.Conn).Handshake()
			c.Close()
		}
		errc <- err
	}()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: client}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	st := c.(*tls.Conn).ConnectionState()
	c.Close()
	if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "http/1.1" {
		t.Errorf("version %x, ALPN %q", st.Version, st.NegotiatedProtocol)
	}
	if err := <-errc; err != nil {
		t.Error(err)
	}
	if _, err := LoadClientConfig(files.Key); err == nil {
		t.Error("a key file taken for a certificate")
	}
}
