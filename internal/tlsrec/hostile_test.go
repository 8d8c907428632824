package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// hostileCase is something a client sends over a real socket after a crypto/tls
// handshake, and the alert the server must answer with before it closes.
type hostileCase struct {
	name   string
	vers   uint16
	input  func(c *Conn) []byte
	err    error
	level  uint8
	alert  uint8
	before string // echoed before the end
}

var hostileCases = []hostileCase{
	{name: "renegotiation", vers: tls.VersionTLS12, input: func(c *Conn) []byte {
		// A real ClientHello's start: renegotiation asked for under the application keys.
		return sealMsg(c, typeHandshake, []byte{msgClientHello, 0, 0, 6, 3, 3, 1, 2, 3, 4})
	}, err: ErrRenegotiation, level: levelWarning, alert: alertNoRenegotiation},
	{name: "ClientHello after the handshake", vers: tls.VersionTLS13, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, []byte{msgClientHello, 0, 0, 6, 3, 3, 1, 2, 3, 4})
	}, err: ErrUnexpectedMessage, level: levelFatal, alert: alertUnexpectedMessage},
	{name: "oversize record", vers: tls.VersionTLS13, input: func(c *Conn) []byte {
		return append(header(23, 0x0303, maxCipher13+1), make([]byte, 100)...)
	}, err: ErrRecordOverflow, level: levelFatal, alert: alertRecordOverflow},
	{name: "oversize record", vers: tls.VersionTLS12, input: func(c *Conn) []byte {
		return header(23, 0x0303, 0xffff)
	}, err: ErrRecordOverflow, level: levelFatal, alert: alertRecordOverflow},
	{name: "garbage", vers: tls.VersionTLS13, input: func(c *Conn) []byte {
		good, _ := c.Seal(nil, []byte("fine so far"))
		return append(good, append(header(23, 0x0303, 64), bytes.Repeat([]byte{0xa5}, 64)...)...)
	}, err: ErrBadRecordMAC, level: levelFatal, alert: alertBadRecordMAC, before: "fine so far"},
	{name: "garbage", vers: tls.VersionTLS12, input: func(c *Conn) []byte {
		return append(header(23, 0x0303, 64), bytes.Repeat([]byte{0xa5}, 64)...)
	}, err: ErrBadRecordMAC, level: levelFatal, alert: alertBadRecordMAC},
}

func TestHostileClients(t *testing.T) {
	p := getPKI(t)
	cfg := p.serverConfig()
	cfg.SessionTicketsDisabled = true // see rawClient
	h := newHarness(t, cfg, Options{}, 4096)
	for _, tc := range hostileCases {
		t.Run(tls.VersionName(tc.vers)+"/"+tc.name, func(t *testing.T) {
			ccfg := p.clientConfig()
			ccfg.MinVersion, ccfg.MaxVersion = tc.vers, tc.vers
			c := dialRaw(t, h, ccfg)
			c.write(t, tc.input(c.peer))
			types, contents := c.readAll(t) // the server closes after its alert
			res := h.next()
			if !errors.Is(res.err, tc.err) {
				t.Fatalf("server ended with %v, want %v", res.err, tc.err)
			}
			var got []byte
			for i, typ := range types {
				switch {
				case typ == typeApplicationData:
					got = append(got, contents[i]...)
				case i != len(types)-1 || typ != typeAlert:
					t.Fatalf("record %d of type %d", i, typ)
				}
			}
			if string(got) != tc.before {
				t.Fatalf("echoed %q, want %q", got, tc.before)
			}
			last := contents[len(contents)-1]
			if types[len(types)-1] != typeAlert || !bytes.Equal(last, []byte{tc.level, tc.alert}) {
				t.Fatalf("last record: type %d %x, want alert %d/%d", types[len(types)-1], last, tc.level, tc.alert)
			}
		})
	}
}

// TestClientKeyUpdate: over a real socket, the client updates its key and asks the
// server to update its own; both sides go on under the new keys.
func TestClientKeyUpdate(t *testing.T) {
	p := getPKI(t)
	cfg := p.serverConfig()
	cfg.SessionTicketsDisabled = true
	h := newHarness(t, cfg, Options{}, 4096)
	c := dialRaw(t, h, p.clientConfig())
	var out []byte
	out, _ = c.peer.SealKeyUpdate(out, true)
	out, _ = c.peer.Seal(out, []byte("after my update"))
	c.write(t, out)
	// The server's answer: its KeyUpdate (update_not_requested) under its old key,
	// then the echo under the new one. The client's Conn acts on both.
	got, err := c.peer.Open(nil, c.readRaw(t, 2))
	if err != nil || string(got) != "after my update" {
		t.Fatalf("%q, %v", got, err)
	}
	if c.peer.in.seq != 1 || c.peer.Pending() {
		t.Fatalf("the server's key did not move on (sequence %d), or it asked for an update", c.peer.in.seq)
	}
	out, _ = c.peer.Seal(nil, []byte("second"))
	c.write(t, out)
	if got, err = c.peer.Open(nil, c.readRaw(t, 1)); err != nil || string(got) != "second" {
		t.Fatalf("%q, %v", got, err)
	}
	c.write(t, c.peer.SealClose(nil))
	if res := h.next(); res.err != io.EOF {
		t.Fatal("server:", res.err)
	}
}

// injectConn sends extra bytes right after the client's first write (its ClientHello).
type injectConn struct {
	net.Conn
	extra []byte
	done  bool
}

func (c *injectConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil && !c.done {
		c.done = true
		_, err = c.Conn.Write(c.extra)
	}
	return n, err
}

// TestEarlyDataRefused: a client that sends application data right behind its
// ClientHello, as 0-RTT would, gets no data through: crypto/tls (no early data outside
// QUIC) fails the handshake on the record, and no Conn is made.
func TestEarlyDataRefused(t *testing.T) {
	p := getPKI(t)
	h := newHarness(t, p.serverConfig(), Options{}, 4096)
	nc, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	early := append(header(typeApplicationData, 0x0303, 40), bytes.Repeat([]byte("0-RTT!!!"), 5)...)
	c := tls.Client(&injectConn{Conn: nc, extra: early}, p.clientConfig())
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// A TLS 1.3 client's Handshake returns once its Finished is sent, before the
	// server's verdict: the verdict comes with the first read.
	err = c.Handshake()
	if err == nil {
		_, err = c.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "bad record MAC") {
		t.Fatalf("client: %v, want a bad_record_mac alert", err)
	}
	res := h.next()
	if res.conn != nil || res.err == nil {
		t.Fatalf("server: conn %v, err %v; want a failed handshake", res.conn != nil, res.err)
	}
}
