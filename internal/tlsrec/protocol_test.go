package tlsrec

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// protocolCase is one input a client may send after the handshake, and what the server
// must do: the application data delivered before the end, the error (nil: none), and the
// alert owed to the client (-1: none).
type protocolCase struct {
	name  string
	tls13 bool
	tls12 bool
	input func(c *Conn) []byte
	data  string
	err   error
	alert int
	level uint8
}

func header(typ uint8, vers uint16, n int) []byte {
	return []byte{typ, byte(vers >> 8), byte(vers), byte(n >> 8), byte(n)}
}

var protocolCases = []protocolCase{
	{name: "oversize record header (1.3)", tls13: true, input: func(c *Conn) []byte { return header(23, 0x0303, maxCipher13+1) }, err: ErrRecordOverflow, alert: int(alertRecordOverflow)},
	{name: "oversize record header (1.2)", tls12: true, input: func(c *Conn) []byte { return header(23, 0x0303, maxCipher12+1) }, err: ErrRecordOverflow, alert: int(alertRecordOverflow)},
	{name: "oversize plaintext (1.3)", tls13: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeApplicationData, make([]byte, maxPlaintext+1))
	}, err: ErrRecordOverflow, alert: int(alertRecordOverflow)},
	{name: "oversize plaintext (1.2)", tls12: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeApplicationData, make([]byte, maxPlaintext+1))
	}, err: ErrRecordOverflow, alert: int(alertRecordOverflow)},
	{name: "garbage body", tls13: true, tls12: true, input: func(c *Conn) []byte {
		return append(header(23, 0x0303, 40), bytes.Repeat([]byte{0x5a}, 40)...)
	}, err: ErrBadRecordMAC, alert: int(alertBadRecordMAC)},
	{name: "body shorter than a tag", tls13: true, tls12: true, input: func(c *Conn) []byte {
		return append(header(23, 0x0303, 3), 1, 2, 3)
	}, err: ErrBadRecordMAC, alert: int(alertBadRecordMAC)},
	{name: "flipped bit after good data", tls13: true, tls12: true, input: func(c *Conn) []byte {
		good, _ := c.Seal(nil, []byte("ok"))
		bad, _ := c.Seal(nil, []byte("tampered"))
		bad[len(bad)-1] ^= 1
		return append(good, bad...)
	}, data: "ok", err: ErrBadRecordMAC, alert: int(alertBadRecordMAC)},
	{name: "replayed record", tls13: true, tls12: true, input: func(c *Conn) []byte {
		rec, _ := c.Seal(nil, []byte("once"))
		return append(rec, rec...)
	}, data: "once", err: ErrBadRecordMAC, alert: int(alertBadRecordMAC)},
	{name: "wrong record version", tls13: true, tls12: true, input: func(c *Conn) []byte { return header(23, 0x0301, 20) }, err: ErrUnexpectedMessage, alert: int(alertProtocolVersion)},
	{name: "plaintext handshake record (1.3)", tls13: true, input: func(c *Conn) []byte {
		return append(header(22, 0x0303, 4), msgKeyUpdate, 0, 0, 1)
	}, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "change_cipher_spec (1.2)", tls12: true, input: func(c *Conn) []byte { return append(header(20, 0x0303, 1), 1) }, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "no content type (1.3)", tls13: true, input: func(c *Conn) []byte { return sealRaw(c, 23, make([]byte, 10)) }, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "unknown content type", tls13: true, input: func(c *Conn) []byte { return sealMsg(c, 99, []byte("x")) }, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "padded data (1.3)", tls13: true, input: func(c *Conn) []byte {
		return sealRaw(c, 23, append([]byte("padded\x17"), make([]byte, 300)...))
	}, data: "padded", alert: -1},
	{name: "empty records", tls13: true, tls12: true, input: func(c *Conn) []byte {
		a := sealMsg(c, typeApplicationData, nil)
		a = append(a, sealMsg(c, typeApplicationData, nil)...)
		b, _ := c.Seal(nil, []byte("x"))
		return append(a, b...)
	}, data: "x", alert: -1},
	{name: "renegotiation ClientHello (1.2)", tls12: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, []byte{msgClientHello, 0, 0, 4, 3, 3, 0, 0})
	}, err: ErrRenegotiation, alert: int(alertNoRenegotiation), level: levelWarning},
	{name: "HelloRequest from a client (1.2)", tls12: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, []byte{0, 0, 0, 0})
	}, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "ClientHello after the handshake (1.3)", tls13: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, []byte{msgClientHello, 0, 0, 4, 3, 3, 0, 0})
	}, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "CertificateRequest from a client (1.3)", tls13: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, []byte{13, 0, 0, 0})
	}, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "empty handshake record", tls13: true, tls12: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, nil)
	}, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "NewSessionTicket from a client, split (1.3)", tls13: true, input: func(c *Conn) []byte {
		a := sealMsg(c, typeHandshake, []byte{msgNewSessionTicket, 0, 1, 0, 1, 2})
		b := sealMsg(c, typeHandshake, make([]byte, 254))
		d, _ := c.Seal(nil, []byte("still here"))
		return append(append(a, b...), d...)
	}, data: "still here", alert: -1},
	{name: "data inside a handshake message (1.3)", tls13: true, input: func(c *Conn) []byte {
		a := sealMsg(c, typeHandshake, []byte{msgNewSessionTicket, 0, 1, 0})
		d, _ := c.Seal(nil, []byte("x"))
		return append(a, d...)
	}, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "KeyUpdate with a bad value (1.3)", tls13: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, []byte{msgKeyUpdate, 0, 0, 1, 2})
	}, err: ErrDecode, alert: int(alertIllegalParameter)},
	{name: "KeyUpdate of two bytes (1.3)", tls13: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, []byte{msgKeyUpdate, 0, 0, 2, 0, 0})
	}, err: ErrDecode, alert: int(alertDecodeError)},
	{name: "data after KeyUpdate in its record (1.3)", tls13: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeHandshake, []byte{msgKeyUpdate, 0, 0, 1, 0, msgKeyUpdate, 0, 0, 1, 0})
	}, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "KeyUpdate split over two records (1.3)", tls13: true, input: func(c *Conn) []byte {
		a := sealMsg(c, typeHandshake, []byte{msgKeyUpdate, 0, 0})
		b := sealMsg(c, typeHandshake, []byte{1, 0})
		c.out.update(c.suite)
		d, _ := c.Seal(nil, []byte("new key"))
		return append(append(a, b...), d...)
	}, data: "new key", alert: -1},
	{name: "16 KeyUpdates, then data (1.3)", tls13: true, input: func(c *Conn) []byte {
		var b []byte
		for i := 0; i < maxUselessRecords; i++ {
			b, _ = c.SealKeyUpdate(b, false)
		}
		d, _ := c.Seal(nil, []byte("data"))
		return append(b, d...)
	}, data: "data", alert: -1},
	{name: "a flood of empty records", tls13: true, tls12: true, input: func(c *Conn) []byte {
		var b []byte
		for i := 0; i <= maxUselessRecords; i++ {
			b = append(b, sealMsg(c, typeApplicationData, nil)...)
		}
		return b
	}, err: ErrUnexpectedMessage, alert: int(alertUnexpectedMessage)},
	{name: "fatal alert from the client", tls13: true, tls12: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeAlert, []byte{levelFatal, 40})
	}, err: &AlertError{Alert: 40, Remote: true}, alert: -1},
	{name: "malformed alert", tls13: true, tls12: true, input: func(c *Conn) []byte {
		return sealMsg(c, typeAlert, []byte{levelFatal, 40, 0})
	}, err: ErrDecode, alert: int(alertDecodeError)},
	{name: "warning alert (1.2)", tls12: true, input: func(c *Conn) []byte {
		a := sealMsg(c, typeAlert, []byte{levelWarning, alertNoRenegotiation})
		d, _ := c.Seal(nil, []byte("goes on"))
		return append(a, d...)
	}, data: "goes on", alert: -1},
	{name: "user_canceled (1.3)", tls13: true, input: func(c *Conn) []byte {
		a := sealMsg(c, typeAlert, []byte{levelWarning, alertUserCanceled})
		return append(a, c.SealClose(nil)...)
	}, err: io.EOF, alert: int(alertCloseNotify), level: levelWarning},
	{name: "close_notify, then anything", tls13: true, tls12: true, input: func(c *Conn) []byte {
		d, _ := c.Seal(nil, []byte("last"))
		return append(append(d, c.SealClose(nil)...), "garbage after the end"...)
	}, data: "last", err: io.EOF, alert: int(alertCloseNotify), level: levelWarning},
}

func TestOpenProtocol(t *testing.T) {
	for _, s := range suites {
		for _, tc := range protocolCases {
			if s.tls13 && !tc.tls13 || !s.tls13 && !tc.tls12 {
				continue
			}
			t.Run(suiteName(s)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				server, client := pair(t, s)
				got, err := server.Open(nil, tc.input(client))
				if string(got) != tc.data {
					t.Errorf("data %q, want %q", got, tc.data)
				}
				var ae *AlertError
				switch {
				case tc.err == nil && err != nil:
					t.Fatalf("error %v", err)
				case errors.As(tc.err, &ae):
					var gotAE *AlertError
					if !errors.As(err, &gotAE) || *gotAE != *ae {
						t.Fatalf("error %v, want %v", err, tc.err)
					}
				case tc.err != nil && !errors.Is(err, tc.err):
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				if err != nil {
					// The end is sticky.
					if _, again := server.Open(nil, []byte("more")); again != err {
						t.Fatalf("Open after the end: %v, want %v", again, err)
					}
				}
				if tc.alert < 0 {
					if server.Pending() {
						t.Fatal("a record is owed, want none")
					}
					return
				}
				out := server.SealPending(nil)
				types, contents := openAll(t, client, out)
				level := tc.level
				if level == 0 {
					level = levelFatal
				}
				if len(types) != 1 || types[0] != typeAlert || !bytes.Equal(contents[0], []byte{level, uint8(tc.alert)}) {
					t.Fatalf("owed records %v %x, want alert %d/%d", types, contents, level, tc.alert)
				}
				if _, err := server.Seal(nil, []byte("x")); err != ErrClosed {
					t.Fatalf("Seal after the alert: %v", err)
				}
			})
		}
	}
}
