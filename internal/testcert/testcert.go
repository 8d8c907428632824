// Package testcert makes the certificate tests serve wss:// with on loopback: a
// self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, valid from an hour
// before now, that is its own CA, so a client trusts it by adding it to its roots (or,
// outside Go, by reading the PEM file WritePEM makes).
//
// The bench programs make theirs with it too (bench/internal/tlscert wraps Make and
// WriteFiles), which is why nothing here imports package testing: New and WritePEM
// take a TB, which a *testing.T or *testing.B is.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TB is the part of testing.TB that New and WritePEM use.
type TB interface {
	Helper()
	Fatal(args ...any)
	TempDir() string
}

// Cert is a self-signed certificate and its key.
type Cert struct {
	TLS   tls.Certificate   // for a server's Config (Leaf set)
	Roots *x509.CertPool    // trusts the certificate
	key   *ecdsa.PrivateKey // TLS.PrivateKey
}

// New makes a certificate whose subject is name, valid for an hour from now; a failure
// fails t.
func New(t TB, name string) *Cert {
	t.Helper()
	c, err := Make(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Make makes a certificate whose subject is name, valid from an hour before now until
// valid after now.
func Make(name string, valid time.Duration) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcert: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("testcert: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(valid),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testcert: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcert: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &Cert{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Roots: roots, key: key}, nil
}

// ServerConfig is a server Config presenting the certificate.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}}
}

// ClientConfig is a client Config that trusts the certificate, for 127.0.0.1 over
// HTTP/1.1 (WebSocket).
func (c *Cert) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.Roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
}

// WritePEM writes the certificate and its key as PEM files in a directory t removes.
func (c *Cert) WritePEM(t TB) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := c.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// WriteFiles writes the certificate and its key as PEM files cert.pem and key.pem in dir
// (mode 0600).
func (c *Cert) WriteFiles(dir string) (certFile, keyFile string, err error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return "", "", fmt.Errorf("testcert: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.TLS.Certificate[0]}), 0o600); err != nil {
		return "", "", fmt.Errorf("testcert: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", fmt.Errorf("testcert: %w", err)
	}
	return certFile, keyFile, nil
}
