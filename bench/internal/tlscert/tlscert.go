// Package tlscert makes the certificate the bench programs serve wss:// with: a
// self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, made at start and
// valid for a day around now, that is its own CA. A driver makes one (New), writes it
// as PEM files into its temporary directory for the server apps' -cert and -key
// (WritePEM), and gives its clients ClientConfig, which trusts it; or a client that
// only has the files uses InsecureClientConfig (the certificate is not checked).
package tlscert

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

// Cert is a self-signed certificate and its key.
type Cert struct {
	TLS   tls.Certificate // for a server's Config (Leaf set)
	Roots *x509.CertPool  // trusts the certificate
	key   *ecdsa.PrivateKey
}

// New makes a certificate whose subject is name.
func New(name string) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &Cert{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Roots: roots, key: key}, nil
}

// ServerConfig is a server Config presenting the certificate, with the defaults
// otherwise (TLS 1.3 is negotiated with Go clients) and ALPN http/1.1 only: WebSocket
// is served over HTTP/1.1.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, NextProtos: []string{"http/1.1"}}
}

// ClientConfig is a client Config that trusts the certificate, for 127.0.0.1, offering
// ALPN http/1.1.
func (c *Cert) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.Roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
}

// InsecureClientConfig is a client Config that accepts any certificate (the bench
// servers' self-signed one, for a client that only has its address), offering ALPN
// http/1.1.
func InsecureClientConfig() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
}

// LoadClientConfig is ClientConfig for a process that has only the certificate's PEM
// file (a client child given -ca FILE).
func LoadClientConfig(certFile string) (*tls.Config, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlscert: no certificate in %s", certFile)
	}
	return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}, nil
}

// Files are the PEM files WritePEM wrote.
type Files struct {
	Cert, Key string
}

// WritePEM writes the certificate and its key as PEM files cert.pem and key.pem in
// dir (mode 0600).
func (c *Cert) WritePEM(dir string) (Files, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return Files{}, err
	}
	f := Files{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.TLS.Certificate[0]}), 0o600); err != nil {
		return Files{}, err
	}
	if err := os.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return Files{}, err
	}
	return f, nil
}

// Make makes a certificate and writes it into dir: what a driver does at start.
func Make(dir, name string) (*Cert, Files, error) {
	c, err := New(name)
	if err != nil {
		return nil, Files{}, fmt.Errorf("tlscert: %w", err)
	}
	f, err := c.WritePEM(dir)
	if err != nil {
		return nil, Files{}, fmt.Errorf("tlscert: %w", err)
	}
	return c, f, nil
}
