package tlsrec

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
)

// BenchmarkSeal: one record of 1 KiB or 16 KiB per operation, per suite, into a buffer
// with room (no allocation).
func BenchmarkSeal(b *testing.B) {
	for _, s := range suites {
		for _, n := range []int{1 << 10, maxPlaintext} {
			b.Run(fmt.Sprintf("%s/%d", suiteName(s), n), func(b *testing.B) {
				server, _ := pair(b, s)
				msg := make([]byte, n)
				out := make([]byte, 0, server.SealedLen(n))
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					out, _ = server.Seal(out[:0], msg)
				}
			})
		}
	}
}

// BenchmarkSealOpen: the client seals a record and the server opens it, per operation
// (a record authenticates only under its own sequence number, so each one is new).
func BenchmarkSealOpen(b *testing.B) {
	for _, s := range suites {
		for _, n := range []int{1 << 10, maxPlaintext} {
			b.Run(fmt.Sprintf("%s/%d", suiteName(s), n), func(b *testing.B) {
				server, client := pair(b, s)
				msg := make([]byte, n)
				rec := make([]byte, 0, client.SealedLen(n))
				in := make([]byte, client.SealedLen(n))
				plain := make([]byte, 0, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					rec, _ = client.Seal(rec[:0], msg)
					copy(in, rec)
					var err error
					if plain, err = server.Open(plain[:0], in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkHandshake: a crypto/tls client's TLS 1.3 handshake and one small message each
// way, served by a Runner and a Conn or by a plain tls.Conn, over net.Pipe (client and
// server CPU both counted).
func BenchmarkHandshake(b *testing.B) {
	p := getPKI(b)
	msg := []byte("hello")
	b.Run("tlsrec", func(b *testing.B) {
		r, err := NewRunner(p.serverConfig(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		b.ReportAllocs()
		for b.Loop() {
			cEnd, sEnd := net.Pipe()
			errc := make(chan error, 1)
			go func() { errc <- clientExchange(cEnd, p.clientConfig(), msg) }()
			res := serveConn(r, sEnd, 4096, len(msg))
			if err := <-errc; err != nil || res.conn == nil {
				b.Fatal(err, res.err)
			}
		}
	})
	b.Run("crypto-tls", func(b *testing.B) {
		cfg := p.serverConfig()
		b.ReportAllocs()
		for b.Loop() {
			cEnd, sEnd := net.Pipe()
			errc := make(chan error, 1)
			go func() { errc <- clientExchange(cEnd, p.clientConfig(), msg) }()
			tc := tls.Server(sEnd, cfg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(tc, got); err != nil {
				b.Fatal(err)
			}
			if _, err := tc.Write(got); err != nil {
				b.Fatal(err)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			sEnd.Close()
		}
	})
}
