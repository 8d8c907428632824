package tlsrec

import (
	"crypto/tls"
	"encoding/hex"
)

// takeover gathers, while crypto/tls runs the handshake, what the record layer needs
// afterwards: the secrets from the key log, the server random and cipher suite from the
// ServerHello that went out, and the sequence numbers in both directions.
type takeover struct {
	clientRandom  []byte
	master        []byte // TLS 1.2
	clientTraffic []byte // TLS 1.3 CLIENT_TRAFFIC_SECRET_0
	serverTraffic []byte // TLS 1.3 SERVER_TRAFFIC_SECRET_0

	hello    []byte // the start of the server's plaintext handshake stream: the ServerHello
	outCur   recordCursor
	outRec   []byte // the outgoing record being gathered: a copy, whatever the Writes
	outCCS   bool
	outSeq   uint64 // TLS 1.2: server records after its ChangeCipherSpec
	inCCS    bool
	inSeq    uint64     // TLS 1.2: client records after its ChangeCipherSpec
	app      *direction // TLS 1.3: the server's application key, to recognise its records
	appSuite *suite
	appSeq   uint64 // TLS 1.3: server records already sent under the application key
}

// serverHelloPrefix is as much of a ServerHello as holds its random and cipher suite:
// type, length, version, random, session ID (at most 32 bytes), cipher suite.
const serverHelloPrefix = 4 + 2 + 32 + 1 + 32 + 2

func (t *takeover) keyLogged(label string, random, secret []byte) {
	switch label {
	case "CLIENT_RANDOM":
		t.master = secret
	case "CLIENT_TRAFFIC_SECRET_0":
		t.clientTraffic = secret
	case "SERVER_TRAFFIC_SECRET_0":
		t.serverTraffic = secret
	default:
		return
	}
	if r, err := hex.DecodeString(string(random)); err == nil {
		t.clientRandom = r
	}
}

// clientRecord counts the client's records that crypto/tls reads: in TLS 1.2 the ones
// after its ChangeCipherSpec were sealed under the keys the Conn takes over.
func (t *takeover) clientRecord(typ uint8) {
	if typ == typeChangeCipherSpec {
		t.inCCS, t.inSeq = true, 0
	} else if t.inCCS {
		t.inSeq++
	}
}

// serverBytes follows the server's output record by record, gathering each record in
// outRec (a copy: crypto/tls may reuse p, and countAppRecord decrypts in place).
func (t *takeover) serverBytes(p []byte) {
	for len(p) > 0 {
		n, _ := t.outCur.next(p, len(p))
		t.outRec = append(t.outRec, p[:n]...)
		p = p[n:]
		if t.outCur.hdrN == 0 {
			t.serverRecord(t.outRec)
			t.outRec = t.outRec[:0]
		}
	}
}

// serverRecord looks at one whole record the server wrote.
func (t *takeover) serverRecord(rec []byte) {
	typ, body := rec[0], rec[headerLen:]
	switch {
	case typ == typeChangeCipherSpec:
		t.outCCS, t.outSeq = true, 0
		return
	case t.outCCS:
		t.outSeq++
	}
	if typ == typeHandshake && !t.outCCS && len(t.hello) < serverHelloPrefix {
		t.hello = append(t.hello, body[:min(len(body), serverHelloPrefix-len(t.hello))]...)
	}
	if typ == typeApplicationData && t.serverTraffic != nil {
		t.countAppRecord(rec)
	}
}

// countAppRecord counts rec (a copy, decrypted in place) if it opens under the server's TLS 1.3 application key.
// crypto/tls writes its NewSessionTickets under that key inside Handshake, after the
// handshake-key records: only those open, and the Conn's first sequence number follows
// them.
func (t *takeover) countAppRecord(rec []byte) {
	if t.app == nil {
		s := suiteByID(t.helloSuite())
		if s == nil || !s.tls13 {
			return
		}
		key, iv := s.trafficKeys(t.serverTraffic)
		d := new(direction)
		if d.setKeys(s, key, iv, t.serverTraffic) != nil {
			return
		}
		t.app, t.appSuite = d, s
	}
	body := rec[headerLen:]
	if _, err := t.app.aead.Open(body[:0], t.app.nonceFor(t.appSuite, t.appSeq, nil), body, rec[:headerLen]); err == nil {
		t.appSeq++
	}
}

// helloRandom and helloSuite read the ServerHello; zero values when it was not seen.
func (t *takeover) helloRandom() []byte {
	if len(t.hello) < 4+2+32 || t.hello[0] != 2 {
		return nil
	}
	return t.hello[6:38]
}

func (t *takeover) helloSuite() uint16 {
	if len(t.hello) < 39 || t.hello[0] != 2 {
		return 0
	}
	at := 39 + int(t.hello[38])
	if len(t.hello) < at+2 {
		return 0
	}
	return uint16(t.hello[at])<<8 | uint16(t.hello[at+1])
}

// conn builds the record layer for a finished handshake.
func (t *takeover) conn(cs tls.ConnectionState) (*Conn, error) {
	s := suiteByID(cs.CipherSuite)
	if s == nil || s.tls13 != (cs.Version == tls.VersionTLS13) || (!s.tls13 && cs.Version != tls.VersionTLS12) {
		return nil, ErrUnsupported
	}
	if s.tls13 {
		n := s.newHash().Size()
		if len(t.clientTraffic) != n || len(t.serverTraffic) != n {
			return nil, ErrUnsupported
		}
		ck, civ := s.trafficKeys(t.clientTraffic)
		sk, siv := s.trafficKeys(t.serverTraffic)
		return newConn(s, ck, civ, t.clientTraffic, 0, sk, siv, t.serverTraffic, t.appSeq)
	}
	sr := t.helloRandom()
	if len(t.master) != 48 || len(t.clientRandom) != 32 || sr == nil {
		return nil, ErrUnsupported
	}
	ck, sk, civ, siv := s.keyBlock12(t.master, t.clientRandom, sr)
	return newConn(s, ck, civ, nil, t.inSeq, sk, siv, nil, t.outSeq)
}
