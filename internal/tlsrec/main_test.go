package tlsrec

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// testPKI is a CA made for the tests and two server certificates it signed for
// 127.0.0.1 and "localhost": ECDSA P-256 and RSA 2048 (the TLS 1.2 suites need one each).
type testPKI struct {
	pool      *x509.CertPool
	caPEM     []byte
	ecdsa     tls.Certificate
	rsa       tls.Certificate
	ecdsaPEMs [2][]byte // cert, key
}

var (
	pkiOnce sync.Once
	pki     *testPKI
	pkiErr  error
)

func getPKI(t testing.TB) *testPKI {
	pkiOnce.Do(func() { pki, pkiErr = newPKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

func newPKI() (*testPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlsrec test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &testPKI{pool: x509.NewCertPool(), caPEM: pemBlock("CERTIFICATE", caDER)}
	p.pool.AddCert(ca)
	leaf := func(serial int64, pub, priv any) (tls.Certificate, []byte, error) {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: "localhost"},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, der, err
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var eder []byte
	if p.ecdsa, eder, err = leaf(2, &ek.PublicKey, ek); err != nil {
		return nil, err
	}
	ekDER, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		return nil, err
	}
	p.ecdsaPEMs = [2][]byte{pemBlock("CERTIFICATE", eder), pemBlock("PRIVATE KEY", ekDER)}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if p.rsa, _, err = leaf(3, &rk.PublicKey, rk); err != nil {
		return nil, err
	}
	return p, nil
}

// serverConfig serves both certificates; crypto/tls picks the one the suite needs.
func (p *testPKI) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.ecdsa, p.rsa}, NextProtos: []string{"http/1.1"}}
}

func (p *testPKI) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
}

// result is what the server side of the harness saw.
type result struct {
	conn  *Conn
	err   error // the handshake's, or the first error of Open or the socket
	state tls.ConnectionState
	// The Conn's sequence numbers right after the takeover.
	firstRead, firstWrite uint64
}

// harness is the test's stand-in for the event loop: for each accepted socket a
// goroutine reads it (readSize bytes at a time) and feeds the Handshake, then the Conn;
// another writes what they produce. The server echoes what it opens; a message starting
// with "KEYUPDATE" is answered by a KeyUpdate(update_requested) first.
type harness struct {
	t        testing.TB
	ln       net.Listener
	r        *Runner
	readSize int
	results  chan result
	wg       sync.WaitGroup
}

func newHarness(t testing.TB, cfg *tls.Config, opts Options, readSize int) *harness {
	t.Helper()
	r, err := NewRunner(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ln: ln, r: r, readSize: readSize, results: make(chan result, 64)}
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(h.close)
	return h
}

func (h *harness) addr() string { return h.ln.Addr().String() }

func (h *harness) close() {
	h.ln.Close()
	h.r.Close()
	h.wg.Wait()
}

func (h *harness) accept() {
	defer h.wg.Done()
	for {
		nc, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			res := serveConn(h.r, nc, h.readSize, 0)
			select {
			case h.results <- res:
			default:
			}
		}()
	}
}

// next waits for the result of the next connection the harness served.
func (h *harness) next() result {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no server result within 10 s")
	}
	return result{}
}

// serveConn runs one connection: the handshake, then an echo, to its end or, with
// echoBytes > 0, until it echoed that many bytes (the Conn is then left as it is).
func serveConn(r *Runner, nc net.Conn, readSize, echoBytes int) (res result) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	chunks := make(chan []byte, 16)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			b := make([]byte, readSize)
			n, err := nc.Read(b)
			if n > 0 {
				select {
				case chunks <- b[:n]:
				case <-stop:
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	wake := make(chan struct{}, 1)
	hs := r.Start(nc.LocalAddr(), nc.RemoteAddr(), func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer hs.Abort()
	// Handshake.
	var pending [][]byte // bytes Feed refused because the handshake had just ended
	for !hs.Done() {
		select {
		case b := <-chunks:
			if err := hs.Feed(b); errors.Is(err, ErrHandshakeDone) {
				pending = append(pending, b)
			} else if err != nil {
				nc.Write(hs.Output(nil))
				return result{err: err}
			}
		case <-wake:
		case err := <-readErr:
			return result{err: err}
		}
		if out := hs.Output(nil); len(out) > 0 {
			if _, err := nc.Write(out); err != nil {
				return result{err: err}
			}
		}
	}
	if out := hs.Output(nil); len(out) > 0 {
		nc.Write(out)
	}
	c, rest, err := hs.Result()
	if err != nil {
		return result{err: err}
	}
	res = result{conn: c, state: hs.ConnectionState(), firstRead: c.in.seq, firstWrite: c.out.seq}
	if echoBytes == 0 {
		defer c.Release()
	}
	var plain, out []byte
	step := func(in []byte) error {
		var err error
		plain, err = c.Open(plain[:0], in)
		out = out[:0]
		if len(plain) > 0 {
			if bytes.HasPrefix(plain, []byte("KEYUPDATE")) {
				out, _ = c.SealKeyUpdate(out, true)
			}
			out, _ = c.Seal(out, plain)
		}
		if c.Pending() {
			out = c.SealPending(out)
		}
		if len(out) > 0 {
			if _, werr := nc.Write(out); werr != nil && err == nil {
				err = werr
			}
		}
		if echoBytes > 0 && len(plain) > 0 {
			if echoBytes -= len(plain); echoBytes <= 0 {
				return errEchoesDone
			}
		}
		return err
	}
	if err := step(rest); err != nil {
		res.err = err
		return res
	}
	for _, b := range pending {
		if err := step(b); err != nil {
			res.err = err
			return res
		}
	}
	for {
		select {
		case b := <-chunks:
			if err := step(b); err != nil {
				res.err = err
				return res
			}
		case err := <-readErr:
			// Drain what the reader had queued before its error.
			for {
				select {
				case b := <-chunks:
					if err := step(b); err != nil {
						res.err = err
						return res
					}
					continue
				default:
				}
				break
			}
			if err == io.EOF {
				err = c.CloseRead()
			}
			res.err = err
			return res
		}
	}
}

var errEchoesDone = errors.New("echoed as many bytes as asked")

// roundTrip writes msg on c and reads the same number of bytes back.
func roundTrip(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal("write:", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal("read:", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs: %d bytes back, first %q", len(got), got[:min(len(got), 32)])
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
