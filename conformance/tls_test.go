package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/rawecho"
	"github.com/livepoll/livepoll/live"
)

// startEchoTLS serves the echo engine over wss with live's ServeTLS (the event loop
// seals and opens the records) and returns its address and a client config trusting it.
func startEchoTLS(t *testing.T) (string, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "conformance"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rawecho.New(16 << 20).(*live.Server)
	served := make(chan error, 1)
	go func() {
		served <- srv.ServeTLS(ln, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	}()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, live.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
}

// dialConn opens the connection dial runs the opening handshake on: TCP, or TLS over
// TCP while TestConformanceTLS runs.
var dialConn = func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

// TestConformanceTLS runs every case over wss and wants the same verdicts as over ws.
func TestConformanceTLS(t *testing.T) {
	addr, client := startEchoTLS(t)
	plain := dialConn
	t.Cleanup(func() { dialConn = plain })
	dialConn = func(addr string) (net.Conn, error) {
		c, err := plain(addr)
		if err != nil {
			return nil, err
		}
		c.(*net.TCPConn).SetNoDelay(true)
		tc := tls.Client(c, client)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	start := time.Now()
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			v, detail := runCase(addr, tc)
			t.Logf("%s: %s", v, detail)
			if v != tc.verdict {
				t.Errorf("verdict %s over wss, want %s: %s", v, tc.verdict, detail)
			}
		})
	}
	t.Logf("%d cases over wss in %v", len(allCases()), time.Since(start).Round(time.Millisecond))
}
