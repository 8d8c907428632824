package tlsrec

import (
	"encoding/binary"
	"io"

	"github.com/livepoll/livepoll/pool"
)

// Open decrypts the records in in — any number of bytes, split anywhere — and appends
// their application data to dst, which must not overlap in. in is used as scratch
// (records are decrypted in place). The bytes of a record that in ends inside are copied
// into a pooled buffer that is returned to its pool once the record completes.
//
// Open returns io.EOF after the peer's close_notify and an *AlertError after a fatal
// alert or bad input; either ends the read side (Open returns it again) and may leave a
// record owed to the peer (see Pending). The plaintext before the end is still appended.
func (c *Conn) Open(dst, in []byte) ([]byte, error) {
	if c.readErr != nil {
		return dst, c.readErr
	}
	var err error
	for {
		if c.partial == nil {
			if len(in) == 0 {
				return dst, nil
			}
			if len(in) >= headerLen {
				if err := c.checkHeader(in); err != nil {
					return dst, c.fail(err)
				}
				if n := headerLen + recordLen(in); len(in) >= n {
					if dst, err = c.openRecord(dst, in[:n]); err != nil {
						return dst, c.fail(err)
					}
					in = in[n:]
					continue
				}
			}
			c.partial = pool.Get(len(in))
			*c.partial = append((*c.partial)[:0], in...)
			return dst, nil
		}
		// Complete the unfinished record: its header first, then its body.
		p := *c.partial
		if len(p) < headerLen {
			take := min(headerLen-len(p), len(in))
			p = c.appendPartial(in[:take])
			in = in[take:]
			if len(p) < headerLen {
				return dst, nil
			}
			if err := c.checkHeader(p); err != nil {
				return dst, c.fail(err)
			}
		}
		n := headerLen + recordLen(p)
		take := min(n-len(p), len(in))
		p = c.appendPartial(in[:take])
		in = in[take:]
		if len(p) < n {
			return dst, nil
		}
		dst, err = c.openRecord(dst, p)
		pool.Put(c.partial)
		c.partial = nil
		if err != nil {
			return dst, c.fail(err)
		}
	}
}

// appendPartial adds b to the unfinished record, moving it to a larger pooled buffer
// when it does not fit: the buffer grows as bytes arrive, never on the declared length.
func (c *Conn) appendPartial(b []byte) []byte {
	p := *c.partial
	if need := len(p) + len(b); need > cap(p) {
		larger := pool.Get(need)
		*larger = append((*larger)[:0], p...)
		pool.Put(c.partial)
		c.partial = larger
		p = *larger
	}
	p = append(p, b...)
	*c.partial = p
	return p
}

// Release returns the buffer of an unfinished record to its pool. Call it when the
// connection is closed; the Conn must not be used afterwards.
func (c *Conn) Release() {
	if c.partial != nil {
		pool.Put(c.partial)
		c.partial = nil
	}
	if c.readErr == nil {
		c.readErr = io.ErrClosedPipe
	}
}

// CloseRead tells the Conn that the socket reached EOF. It returns io.EOF after the
// peer's close_notify, the read side's error if it had one, and otherwise
// io.ErrUnexpectedEOF: the stream was truncated, maybe inside a record (whose buffer is
// released).
func (c *Conn) CloseRead() error {
	if c.readErr != nil {
		return c.readErr
	}
	return c.fail(io.ErrUnexpectedEOF)
}

func recordLen(h []byte) int { return int(binary.BigEndian.Uint16(h[3:5])) }

// checkHeader rejects a record header before its body is waited for.
func (c *Conn) checkHeader(h []byte) error {
	if h[1] != 3 || h[2] != 3 {
		return localAlert(alertProtocolVersion, ErrUnexpectedMessage)
	}
	limit := maxCipher12
	if c.suite.tls13 {
		limit = maxCipher13
	}
	if recordLen(h) > limit {
		return localAlert(alertRecordOverflow, ErrRecordOverflow)
	}
	return nil
}

// fail ends the read side with err and, for a local alert, queues it for the peer.
func (c *Conn) fail(err error) error {
	c.readErr = err
	if c.partial != nil {
		pool.Put(c.partial)
		c.partial = nil
	}
	if a, ok := err.(*AlertError); ok && !a.Remote {
		level := levelFatal
		if a.Alert == alertNoRenegotiation {
			level = levelWarning // RFC 5246 7.2.2: no_renegotiation is always a warning
		}
		c.pending.Or(pendAlert | uint32(a.Alert)<<8 | uint32(level)<<16)
	}
	return err
}

// openRecord decrypts one whole record in place and acts on its content.
func (c *Conn) openRecord(dst, rec []byte) ([]byte, error) {
	typ, plain, err := c.decrypt(rec)
	if err != nil {
		return dst, err
	}
	// Records that carry no data (empty ones, KeyUpdates, skipped tickets, ignored
	// warnings) cost work, a KeyUpdate an allocation; a run of them is a flood, as
	// crypto/tls judges it.
	if typ == typeApplicationData && len(plain) > 0 {
		c.useless = 0
	} else if c.useless++; c.useless > maxUselessRecords {
		return dst, localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
	}
	if typ != typeHandshake && (c.hsN > 0 || c.hsSkip > 0) {
		// A handshake message must not be interleaved with other records.
		return dst, localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
	}
	switch typ {
	case typeApplicationData:
		return append(dst, plain...), nil
	case typeAlert:
		return dst, c.alert(plain)
	case typeHandshake:
		return dst, c.handshakeMessage(plain)
	}
	return dst, localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
}

// alert acts on a received alert record.
func (c *Conn) alert(p []byte) error {
	if len(p) != 2 {
		return localAlert(alertDecodeError, ErrDecode)
	}
	level, desc := p[0], p[1]
	switch {
	case desc == alertCloseNotify:
		// Answer with our close_notify; nothing more will be read.
		c.pending.Or(pendAlert | uint32(alertCloseNotify)<<8 | uint32(levelWarning)<<16)
		return io.EOF
	case c.suite.tls13 && desc == alertUserCanceled:
		return nil // RFC 8446 6.1: a close_notify follows
	case !c.suite.tls13 && level == levelWarning:
		return nil // TLS 1.2 warnings are informational
	}
	return &AlertError{Alert: desc, Remote: true}
}

// handshakeMessage acts on the handshake bytes of one record: TLS 1.3 KeyUpdate and
// NewSessionTicket (skipped: a client has no tickets to give), and a TLS 1.2 ClientHello,
// which asks for renegotiation and is refused. Anything else is unexpected.
func (c *Conn) handshakeMessage(p []byte) error {
	if len(p) == 0 {
		return localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
	}
	for len(p) > 0 {
		if c.hsSkip > 0 {
			n := min(c.hsSkip, len(p))
			c.hsSkip -= n
			p = p[n:]
			continue
		}
		need := 4
		if c.hsN >= 4 && c.hsHdr[0] == msgKeyUpdate {
			need = 5
		}
		n := copy(c.hsHdr[c.hsN:need], p)
		c.hsN += uint8(n)
		p = p[n:]
		if int(c.hsN) < need {
			continue
		}
		msg, length := c.hsHdr[0], int(c.hsHdr[1])<<16|int(c.hsHdr[2])<<8|int(c.hsHdr[3])
		switch {
		case !c.suite.tls13 && msg == msgClientHello:
			return localAlert(alertNoRenegotiation, ErrRenegotiation)
		case c.suite.tls13 && msg == msgNewSessionTicket:
			c.hsN, c.hsSkip = 0, length
		case c.suite.tls13 && msg == msgKeyUpdate:
			if length != 1 {
				return localAlert(alertDecodeError, ErrDecode)
			}
			if c.hsN < 5 {
				continue // its one byte is in the next record
			}
			c.hsN = 0
			req := c.hsHdr[4]
			if req > 1 {
				return localAlert(alertIllegalParameter, ErrDecode)
			}
			if len(p) > 0 {
				// RFC 8446 5.1: handshake messages must not span a key change.
				return localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
			}
			if err := c.in.update(c.suite); err != nil {
				return err
			}
			if req == 1 {
				c.pending.Or(pendKeyUpdate)
			}
		default:
			// A HelloRequest from a client is as unexpected as anything else here.
			return localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
		}
	}
	return nil
}

// decrypt opens one whole record in place: its content type and plaintext.
func (c *Conn) decrypt(rec []byte) (uint8, []byte, error) {
	s, r := c.suite, &c.in
	r.ready(s)
	typ, body := rec[0], rec[headerLen:]
	var plain []byte
	var err error
	if s.tls13 {
		if typ != typeApplicationData {
			return 0, nil, localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
		}
		plain, err = r.aead.Open(body[:0], r.nonceFor(s, r.seq, nil), body, rec[:headerLen])
		if err != nil {
			return 0, nil, localAlert(alertBadRecordMAC, ErrBadRecordMAC)
		}
		r.seq++
		if len(plain) > maxPlaintext+1 {
			return 0, nil, localAlert(alertRecordOverflow, ErrRecordOverflow)
		}
		// The real type is the last non-zero byte; zeros after it are padding.
		i := len(plain) - 1
		for i >= 0 && plain[i] == 0 {
			i--
		}
		if i < 0 {
			return 0, nil, localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
		}
		typ, plain = plain[i], plain[:i]
	} else {
		if typ != typeApplicationData && typ != typeAlert && typ != typeHandshake {
			return 0, nil, localAlert(alertUnexpectedMessage, ErrUnexpectedMessage)
		}
		explicit := 0
		if s.explicitNonce() {
			explicit = 8
		}
		if len(body) < explicit+tagLen {
			return 0, nil, localAlert(alertBadRecordMAC, ErrBadRecordMAC)
		}
		nonce := r.nonceFor(s, r.seq, body[:explicit])
		ct := body[explicit:]
		plain, err = r.aead.Open(ct[:0], nonce, ct, r.aad12(r.seq, typ, len(ct)-tagLen))
		if err != nil {
			return 0, nil, localAlert(alertBadRecordMAC, ErrBadRecordMAC)
		}
		r.seq++
		if len(plain) > maxPlaintext {
			return 0, nil, localAlert(alertRecordOverflow, ErrRecordOverflow)
		}
	}
	return typ, plain, nil
}
