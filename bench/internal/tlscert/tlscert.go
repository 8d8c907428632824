// Package tlscert makes the certificate the bench programs serve wss:// with:
// internal/testcert's self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost,
// its own CA, here valid for a day. A driver makes one and writes it as PEM files into
// its temporary directory for the server apps' -cert and -key (Make), and gives its
// clients ClientConfig, which trusts it; a client that only has the certificate file
// uses LoadClientConfig.
package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/livepoll/livepoll/internal/testcert"
)

// Cert is a self-signed certificate and its key (TLS, Roots, ClientConfig: see
// testcert.Cert).
type Cert struct {
	*testcert.Cert
}

// New makes a certificate whose subject is name, valid for a day.
func New(name string) (*Cert, error) {
	c, err := testcert.Make(name, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &Cert{c}, nil
}

// ServerConfig is a server Config presenting the certificate, with the defaults
// otherwise (TLS 1.3 is negotiated with Go clients) and ALPN http/1.1 only: WebSocket
// is served over HTTP/1.1.
func (c *Cert) ServerConfig() *tls.Config {
	config := c.Cert.ServerConfig()
	config.NextProtos = []string{"http/1.1"}
	return config
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

// Files are the PEM files Make wrote.
type Files struct {
	Cert, Key string
}

// Make makes a certificate and writes it and its key as PEM files cert.pem and key.pem
// in dir (mode 0600): what a driver does at start.
func Make(dir, name string) (*Cert, Files, error) {
	c, err := New(name)
	if err != nil {
		return nil, Files{}, err
	}
	var f Files
	if f.Cert, f.Key, err = c.WriteFiles(dir); err != nil {
		return nil, Files{}, err
	}
	return c, f, nil
}
