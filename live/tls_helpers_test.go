package live

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// A CA made by the tests and a server certificate it signed for 127.0.0.1 and localhost.
var (
	testCAOnce sync.Once
	testCA     struct {
		pool            *x509.CertPool
		cert            tls.Certificate
		certPEM, keyPEM []byte
		certPEMCA       []byte // the CA's certificate
		err             error
	}
)

func testPKI(t testing.TB) (server *tls.Config, roots *x509.CertPool) {
	t.Helper()
	testCAOnce.Do(makeTestPKI)
	if testCA.err != nil {
		t.Fatal(testCA.err)
	}
	return &tls.Config{Certificates: []tls.Certificate{testCA.cert}}, testCA.pool
}

func makeTestPKI() {
	fail := func(err error) { testCA.err = err }
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail(err)
		return
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "livepoll test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		fail(err)
		return
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail(err)
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		fail(err)
		return
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		fail(err)
		return
	}
	testCA.certPEMCA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	testCA.pool = x509.NewCertPool()
	testCA.pool.AddCert(ca)
	testCA.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	testCA.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	testCA.keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// serveTLS runs srv.ServeTLS on a loopback listener; it returns the wss:// URL and a
// client config trusting the test CA. The server is closed when the test ends, and
// ServeTLS must then return ErrServerClosed.
func serveTLS(t testing.TB, srv *Server) (url string, client *tls.Config) {
	t.Helper()
	cfg, roots := testPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, cfg) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("ServeTLS returned %v, want ErrServerClosed", err)
			}
		case <-time.After(waitTimeout):
			t.Error("ServeTLS did not return after Close")
		}
	})
	return "wss://" + ln.Addr().String() + "/", &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
}

// recordingConn keeps every byte the server sent, to look at the records themselves.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got = append(c.got, p[:n]...)
	c.mu.Unlock()
	return n, err
}

// records splits the bytes received into TLS records: (type, body length) each.
func (c *recordingConn) records() (types []byte, lens []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.got
	for len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		if len(b) < 5+n {
			break
		}
		types, lens = append(types, b[0]), append(lens, n)
		b = b[5+n:]
	}
	return types, lens
}

// tlsRawDial upgrades a raw WebSocket client over TLS (version 0: any); raw, if not nil,
// receives the TCP connection under it.
func tlsRawDial(t testing.TB, url string, client *tls.Config, version uint16, raw **recordingConn) *rawClient {
	t.Helper()
	tc, err := tlsRawDialErr(url, client, version, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc
}

func tlsRawDialErr(url string, client *tls.Config, version uint16, raw **recordingConn) (*rawClient, error) {
	nc, err := net.DialTimeout("tcp", hostOf(url), waitTimeout)
	if err != nil {
		return nil, err
	}
	rec := &recordingConn{Conn: nc}
	if raw != nil {
		*raw = rec
	}
	cfg := client.Clone()
	if version != 0 {
		cfg.MinVersion, cfg.MaxVersion = version, version
	}
	return upgradeRaw(tls.Client(rec, cfg), url)
}

// tlsSessions counts the server's sessions whose records the event loop carries.
func tlsSessions(srv *Server) (tlsOnLoop, all int) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for s := range srv.sessions {
		all++
		if s.tls != nil && s.blk == nil && s.fd >= 0 {
			tlsOnLoop++
		}
	}
	return tlsOnLoop, all
}
