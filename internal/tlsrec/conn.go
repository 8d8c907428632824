package tlsrec

import (
	"crypto/cipher"
	"encoding/binary"
	"slices"
	"sync/atomic"
)

// Record sizes (RFC 8446 5.1-5.2, RFC 5246 6.2.3).
const (
	headerLen    = 5
	maxPlaintext = 1 << 14
	tagLen       = 16
	maxCipher13  = maxPlaintext + 256
	maxCipher12  = maxPlaintext + 2048
)

// maxUselessRecords is how many records in a row may carry no application data
// (crypto/tls's limit too).
const maxUselessRecords = 16

// keyUpdateAfter is how many records a TLS 1.3 write key seals before Seal moves to the
// next one: RFC 8446 5.5 allows AES-GCM 2^24.5 records per key.
const keyUpdateAfter = 1 << 24

// Record content types.
const (
	typeChangeCipherSpec uint8 = 20
	typeAlert            uint8 = 21
	typeHandshake        uint8 = 22
	typeApplicationData  uint8 = 23
)

// Handshake message types met after the handshake.
const (
	msgClientHello      uint8 = 1
	msgNewSessionTicket uint8 = 4
	msgKeyUpdate        uint8 = 24
)

// direction is one direction's record protection: an AEAD, its IV and the next sequence
// number. secret is what the AEAD is made from again after Compact: the TLS 1.3 traffic
// secret (also the start of KeyUpdate), or the TLS 1.2 write key.
type direction struct {
	aead   cipher.AEAD // nil after Compact until the next use
	seq    uint64
	iv     [12]byte
	secret [48]byte
	nonce  [12]byte // scratch, here so that passing it to the AEAD does not allocate
	aad    [13]byte // scratch, likewise
}

func (d *direction) setKeys(s *suite, key, iv, secret []byte) error {
	aead, err := s.newAEAD(key)
	if err != nil {
		return err
	}
	d.aead = aead
	copy(d.iv[:], iv)
	if s.tls13 {
		copy(d.secret[:], secret)
	} else {
		copy(d.secret[:], key)
	}
	d.seq = 0
	return nil
}

// ready makes the AEAD again after Compact. The key sizes are the suite's own, so
// making it cannot fail.
func (d *direction) ready(s *suite) {
	if d.aead != nil {
		return
	}
	key := d.secret[:s.keyLen]
	if s.tls13 {
		key, _ = s.trafficKeys(d.secret[:s.newHash().Size()])
	}
	aead, err := s.newAEAD(key)
	if err != nil {
		panic("tlsrec: " + err.Error())
	}
	d.aead = aead
}

// update moves a TLS 1.3 direction to its next traffic secret (KeyUpdate).
func (d *direction) update(s *suite) error {
	n := s.newHash().Size()
	next := s.nextSecret(d.secret[:n])
	key, iv := s.trafficKeys(next)
	return d.setKeys(s, key, iv, next)
}

// nonceFor fills d.nonce for sequence number seq: the IV XOR the sequence number (TLS 1.3,
// ChaCha20-Poly1305) or the 4-byte salt and the explicit nonce (AES-GCM in TLS 1.2).
func (d *direction) nonceFor(s *suite, seq uint64, explicit []byte) []byte {
	if s.explicitNonce() {
		copy(d.nonce[:4], d.iv[:4])
		copy(d.nonce[4:], explicit)
		return d.nonce[:]
	}
	d.nonce = d.iv
	for i := 0; i < 8; i++ {
		d.nonce[4+i] ^= byte(seq >> (56 - 8*i))
	}
	return d.nonce[:]
}

// aad12 is the TLS 1.2 additional data: seq, type, version, plaintext length.
func (d *direction) aad12(seq uint64, typ uint8, n int) []byte {
	binary.BigEndian.PutUint64(d.aad[:8], seq)
	d.aad[8] = typ
	d.aad[9], d.aad[10] = 3, 3
	binary.BigEndian.PutUint16(d.aad[11:], uint16(n))
	return d.aad[:]
}

// Pending control records, owed by the write side to what the read side saw.
const (
	pendKeyUpdate uint32 = 1 << 0 // answer a KeyUpdate(update_requested)
	pendAlert     uint32 = 1 << 1 // send the alert in bits 8-15 at the level in bits 16-23
)

// Conn is the record layer of one TLS connection whose handshake is over: two AEADs,
// their sequence numbers and, only while a record is incomplete, a pooled buffer holding
// its bytes. It is not a net.Conn: the caller moves the bytes.
//
// The read side (Open) and the write side (Seal, SealPending, SealKeyUpdate, SealClose)
// are independent: one goroutine at a time may use each, and the two may run
// concurrently. Pending may be called from anywhere.
type Conn struct {
	suite   *suite
	in      direction
	out     direction
	pending atomic.Uint32

	// read side
	partial *[]byte // the unfinished record, from package pool; nil when none
	hsHdr   [5]byte // a post-handshake message's header (and KeyUpdate's one byte)
	hsN     uint8   // bytes of hsHdr filled
	useless uint8   // records in a row that carried no application data
	hsSkip  int     // bytes of an ignored handshake message still to skip
	readErr error   // sticky: io.EOF or an *AlertError

	// write side
	closed bool
}

func newConn(s *suite, readKey, readIV, readSecret []byte, readSeq uint64, writeKey, writeIV, writeSecret []byte, writeSeq uint64) (*Conn, error) {
	c := &Conn{suite: s}
	if err := c.in.setKeys(s, readKey, readIV, readSecret); err != nil {
		return nil, err
	}
	if err := c.out.setKeys(s, writeKey, writeIV, writeSecret); err != nil {
		return nil, err
	}
	c.in.seq, c.out.seq = readSeq, writeSeq
	return c, nil
}

// Compact lets an idle Conn drop its two AEADs (for AES-GCM, about 1.5 KiB of the
// 1.8 KiB a Conn holds); the next Open or Seal makes the one it needs again from the
// key kept in the Conn (a few hundred nanoseconds and two allocations). Call it only
// while neither side is in use, e.g. from a sweep that holds the connection's read turn
// and write lock.
func (c *Conn) Compact() {
	c.in.aead, c.out.aead = nil, nil
}

// Version is the negotiated protocol version: tls.VersionTLS12 or tls.VersionTLS13.
func (c *Conn) Version() uint16 {
	if c.suite.tls13 {
		return 0x0304
	}
	return 0x0303
}

// CipherSuite is the negotiated cipher suite's ID (crypto/tls's constants).
func (c *Conn) CipherSuite() uint16 { return c.suite.id }

// Pending reports whether the write side owes the peer a record that Open caused: the
// answer to a KeyUpdate, a close_notify after the peer's, or an alert after bad input.
// Call SealPending after Open whenever it is true (Seal sends only the KeyUpdate).
// Safe for concurrent use.
func (c *Conn) Pending() bool { return c.pending.Load() != 0 }

// Overhead is the most a record adds to the plaintext it carries.
func (c *Conn) Overhead() int {
	switch {
	case c.suite.tls13:
		return headerLen + 1 + tagLen
	case c.suite.explicitNonce():
		return headerLen + 8 + tagLen
	}
	return headerLen + tagLen
}

// SealedLen is how many bytes Seal appends for n bytes of plaintext, not counting
// pending control records (at most 2*Overhead()+5 more).
func (c *Conn) SealedLen(n int) int {
	records := (n + maxPlaintext - 1) / maxPlaintext
	if records == 0 {
		records = 1
	}
	return n + records*c.Overhead()
}

// Seal appends p to dst as application-data records of at most 16 KiB of plaintext each
// and returns the extended slice; with cap(dst)-len(dst) >= SealedLen(len(p)) it does not
// allocate. p must not overlap dst's spare capacity. A KeyUpdate owed to the peer goes
// first (RFC 8446 4.6.3); an owed alert waits for SealPending, so data answering what
// Open returned before its error can still go out ahead of it. After SealClose, or once
// a fatal alert went out, Seal returns ErrClosed.
func (c *Conn) Seal(dst, p []byte) ([]byte, error) {
	if c.pending.Load()&pendKeyUpdate != 0 && c.pending.And(^pendKeyUpdate)&pendKeyUpdate != 0 ||
		c.suite.tls13 && c.out.seq >= keyUpdateAfter {
		dst, _ = c.SealKeyUpdate(dst, false)
	}
	if c.closed {
		return dst, ErrClosed
	}
	dst = slices.Grow(dst, c.SealedLen(len(p)))
	for {
		n := min(len(p), maxPlaintext)
		dst = c.sealRecord(dst, typeApplicationData, p[:n])
		p = p[n:]
		if len(p) == 0 {
			return dst, nil
		}
	}
}

// SealPending appends the control records Open made the write side owe (see Pending).
func (c *Conn) SealPending(dst []byte) []byte {
	p := c.pending.Swap(0)
	if p&pendKeyUpdate != 0 && !c.closed {
		dst, _ = c.SealKeyUpdate(dst, false)
	}
	if p&pendAlert != 0 && !c.closed {
		level, alert := uint8(p>>16), uint8(p>>8)
		dst = c.sealRecord(dst, typeAlert, []byte{level, alert})
		if level == levelFatal || alert == alertCloseNotify || alert == alertNoRenegotiation {
			c.closed = true
		}
	}
	return dst
}

// SealClose appends a close_notify alert; Seal refuses data afterwards.
func (c *Conn) SealClose(dst []byte) []byte {
	if c.closed {
		return dst
	}
	c.pending.And(^pendAlert) // a queued close_notify or alert is replaced by this one
	dst = c.sealRecord(dst, typeAlert, []byte{levelWarning, alertCloseNotify})
	c.closed = true
	return dst
}

// SealKeyUpdate appends a TLS 1.3 KeyUpdate message and moves the write side to the next
// traffic secret. With requestPeer the peer must answer with its own KeyUpdate (and
// update its sending key). Under TLS 1.2 it returns ErrUnsupported.
func (c *Conn) SealKeyUpdate(dst []byte, requestPeer bool) ([]byte, error) {
	if !c.suite.tls13 {
		return dst, ErrUnsupported
	}
	if c.closed {
		return dst, ErrClosed
	}
	var req byte
	if requestPeer {
		req = 1
	}
	dst = c.sealRecord(dst, typeHandshake, []byte{msgKeyUpdate, 0, 0, 1, req})
	return dst, c.out.update(c.suite)
}

// sealRecord appends one record of type typ carrying p (at most maxPlaintext bytes).
func (c *Conn) sealRecord(dst []byte, typ uint8, p []byte) []byte {
	s, w := c.suite, &c.out
	w.ready(s)
	start := len(dst)
	total := headerLen + len(p) + tagLen
	explicit := 0
	switch {
	case s.tls13:
		total++ // inner content type
	case s.explicitNonce():
		explicit = 8
		total += explicit
	}
	if cap(dst)-start < total {
		grown := make([]byte, start, start+total+(start+total)/4)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+total]
	rec := dst[start:]
	outer := typ
	if s.tls13 {
		outer = typeApplicationData
	}
	rec[0], rec[1], rec[2] = outer, 3, 3
	binary.BigEndian.PutUint16(rec[3:5], uint16(total-headerLen))
	body := rec[headerLen+explicit:]
	n := copy(body, p)
	var nonce, aad []byte
	if s.tls13 {
		body[n] = typ
		n++
		nonce, aad = w.nonceFor(s, w.seq, nil), rec[:headerLen]
	} else {
		if explicit > 0 {
			binary.BigEndian.PutUint64(rec[headerLen:], w.seq)
		}
		nonce, aad = w.nonceFor(s, w.seq, rec[headerLen:headerLen+explicit]), w.aad12(w.seq, typ, n)
	}
	w.aead.Seal(body[:0], nonce, body[:n], aad)
	w.seq++
	return dst
}
