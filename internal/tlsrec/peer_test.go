package tlsrec

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// pair makes a server Conn for suite s from random secrets and the client's mirror of it
// (what the client reads, the server writes), both at the sequence numbers a handshake
// leaves: 0 in TLS 1.3, 1 (after Finished) in TLS 1.2.
func pair(t testing.TB, s *suite) (server, client *Conn) {
	server, client, _ = pairAgain(t, s)
	return server, client
}

// pairAgain is pair, and also makes more servers with the same keys.
func pairAgain(t testing.TB, s *suite) (server, client *Conn, again func() *Conn) {
	return pairFrom(t, s, func(b []byte) { rand.Read(b) })
}

// fixedPair is pair with secrets that are the same in every run (for fuzz seeds).
func fixedPair(t testing.TB, s *suite) (server, client *Conn, again func() *Conn) {
	var next byte
	return pairFrom(t, s, func(b []byte) {
		for i := range b {
			next++
			b[i] = next
		}
	})
}

func pairFrom(t testing.TB, s *suite, fill func([]byte)) (server, client *Conn, again func() *Conn) {
	t.Helper()
	random := func(n int) []byte {
		b := make([]byte, n)
		fill(b)
		return b
	}
	var mk func() (*Conn, error)
	var err error
	if s.tls13 {
		n := s.newHash().Size()
		cs, ss := random(n), random(n)
		ck, civ := s.trafficKeys(cs)
		sk, siv := s.trafficKeys(ss)
		mk = func() (*Conn, error) { return newConn(s, ck, civ, cs, 0, sk, siv, ss, 0) }
		client, err = newConn(s, sk, siv, ss, 0, ck, civ, cs, 0)
	} else {
		ck, sk, civ, siv := s.keyBlock12(random(48), random(32), random(32))
		mk = func() (*Conn, error) { return newConn(s, ck, civ, nil, 1, sk, siv, nil, 1) }
		client, err = newConn(s, sk, siv, nil, 1, ck, civ, nil, 1)
	}
	if err != nil {
		t.Fatal(err)
	}
	again = func() *Conn {
		c, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return again(), client, again
}

// sealRaw seals one record on c's write side with none of sealRecord's shaping: in TLS
// 1.3 inner is the whole TLSInnerPlaintext (content, type byte, padding) under outer
// type typ; in TLS 1.2 typ is the content type.
func sealRaw(c *Conn, typ uint8, inner []byte) []byte {
	s, w := c.suite, &c.out
	explicit := 0
	if s.explicitNonce() {
		explicit = 8
	}
	rec := make([]byte, headerLen+explicit, headerLen+explicit+len(inner)+tagLen)
	rec[0], rec[1], rec[2] = typ, 3, 3
	binary.BigEndian.PutUint16(rec[3:], uint16(explicit+len(inner)+tagLen))
	var nonce, aad []byte
	if s.tls13 {
		nonce, aad = w.nonceFor(s, w.seq, nil), rec[:headerLen]
	} else {
		if explicit > 0 {
			binary.BigEndian.PutUint64(rec[headerLen:], w.seq)
		}
		nonce, aad = w.nonceFor(s, w.seq, rec[headerLen:]), w.aad12(w.seq, typ, len(inner))
	}
	rec = w.aead.Seal(rec, nonce, inner, aad)
	w.seq++
	return rec
}

// sealMsg seals content of type typ as one record the way a peer would.
func sealMsg(c *Conn, typ uint8, content []byte) []byte {
	if c.suite.tls13 {
		return sealRaw(c, typeApplicationData, append(append([]byte(nil), content...), typ))
	}
	return sealRaw(c, typ, content)
}

// openAll decrypts the records in b on c's read side without acting on them.
func openAll(t testing.TB, c *Conn, b []byte) (types []uint8, contents [][]byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < headerLen || len(b) < headerLen+recordLen(b) {
			t.Fatalf("%d bytes left: not a whole record", len(b))
		}
		n := headerLen + recordLen(b)
		typ, plain, err := c.decrypt(append([]byte(nil), b[:n]...))
		if err != nil {
			t.Fatal("decrypt:", err)
		}
		types, contents = append(types, typ), append(contents, plain)
		b = b[n:]
	}
	return types, contents
}

// rawClient is a crypto/tls client whose socket the test then uses directly, with the
// client's side of the record layer rebuilt from its key log: it can send what
// crypto/tls never would (KeyUpdate, ClientHello after the handshake, broken records).
// The server must not send tickets in TLS 1.3 (they would sit unread before the records
// the test reads).
type rawClient struct {
	nc   net.Conn
	peer *Conn
}

// recordingConn keeps the bytes the client read during the handshake (the ServerHello
// gives the TLS 1.2 server random).
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	read []byte
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read = append(c.read, p[:n]...)
	c.mu.Unlock()
	return n, err
}

type keyLogTakeover struct {
	mu sync.Mutex
	tk takeover
}

func (k *keyLogTakeover) Write(line []byte) (int, error) {
	if label, random, secret, ok := parseKeyLogLine(line); ok {
		k.mu.Lock()
		k.tk.keyLogged(label, random, secret)
		k.mu.Unlock()
	}
	return len(line), nil
}

func dialRaw(t testing.TB, h *harness, cfg *tls.Config) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", h.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &recordingConn{Conn: nc}
	var kl keyLogTakeover
	cfg = cfg.Clone()
	cfg.KeyLogWriter = &kl
	tc := tls.Client(rc, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal("handshake:", err)
	}
	cs := tc.ConnectionState()
	s := suiteByID(cs.CipherSuite)
	kl.mu.Lock()
	defer kl.mu.Unlock()
	tk := &kl.tk
	var peer *Conn
	if s.tls13 {
		ck, civ := s.trafficKeys(tk.clientTraffic)
		sk, siv := s.trafficKeys(tk.serverTraffic)
		peer, err = newConn(s, sk, siv, tk.serverTraffic, 0, ck, civ, tk.clientTraffic, 0)
	} else {
		rc.mu.Lock()
		tk.serverBytes(rc.read)
		rc.mu.Unlock()
		ck, sk, civ, siv := s.keyBlock12(tk.master, tk.clientRandom, tk.helloRandom())
		peer, err = newConn(s, sk, siv, nil, 1, ck, civ, nil, 1)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{nc: nc, peer: peer}
}

func (c *rawClient) write(t testing.TB, b []byte) {
	t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		t.Fatal("write:", err)
	}
}

// readAll reads until the server closes and decrypts every record.
func (c *rawClient) readAll(t testing.TB) (types []uint8, contents [][]byte) {
	t.Helper()
	b, err := io.ReadAll(c.nc)
	if err != nil {
		t.Fatal("read:", err)
	}
	return openAll(t, c.peer, b)
}

// readRaw reads n whole records.
func (c *rawClient) readRaw(t testing.TB, n int) []byte {
	t.Helper()
	var all []byte
	for i := 0; i < n; i++ {
		hdr := make([]byte, headerLen)
		if _, err := io.ReadFull(c.nc, hdr); err != nil {
			t.Fatal("read:", err)
		}
		body := make([]byte, recordLen(hdr))
		if _, err := io.ReadFull(c.nc, body); err != nil {
			t.Fatal("read:", err)
		}
		all = append(append(all, hdr...), body...)
	}
	return all
}
