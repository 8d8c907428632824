package tlsrec

import (
	"errors"
	"fmt"
)

// Errors that Open returns for input that breaks the protocol, wrapped in an *AlertError
// that names the alert queued for the peer (test them with errors.Is).
var (
	// ErrBadRecordMAC: a record did not authenticate under the current read key.
	ErrBadRecordMAC = errors.New("tlsrec: record failed authentication")
	// ErrRecordOverflow: a record longer than TLS allows (RFC 8446 5.2, RFC 5246 6.2).
	ErrRecordOverflow = errors.New("tlsrec: record too long")
	// ErrUnexpectedMessage: a record or handshake message not allowed after the handshake.
	ErrUnexpectedMessage = errors.New("tlsrec: unexpected message")
	// ErrDecode: a malformed alert or handshake message.
	ErrDecode = errors.New("tlsrec: malformed message")
	// ErrRenegotiation: the client sent a ClientHello after a TLS 1.2 handshake.
	// Renegotiation is refused: a no_renegotiation alert is queued and the read side ends.
	ErrRenegotiation = errors.New("tlsrec: renegotiation refused")
)

// Errors of the write side and the handshake.
var (
	// ErrClosed: Seal after close_notify or a fatal alert was sealed.
	ErrClosed = errors.New("tlsrec: connection closed for writing")
	// ErrHandshakeTimeout: the handshake did not finish within Options.HandshakeTimeout.
	ErrHandshakeTimeout = errors.New("tlsrec: handshake timed out")
	// ErrBusy: the handshake found Options.MaxHandshakes running and Options.MaxQueued
	// waiting, and was refused.
	ErrBusy = errors.New("tlsrec: too many handshakes")
	// ErrHandshakeInput: the client sent more than Options.MaxHandshakeInput bytes that
	// the handshake had not consumed yet.
	ErrHandshakeInput = errors.New("tlsrec: too much handshake input")
	// ErrAborted: Abort was called, or the Runner was closed.
	ErrAborted = errors.New("tlsrec: handshake aborted")
	// ErrHandshakeDone: Feed after the handshake succeeded. The bytes were not taken:
	// give them to the Conn's Open, after Result's rest.
	ErrHandshakeDone = errors.New("tlsrec: handshake over: feed Conn.Open")
	// ErrKTLSUnavailable: the kernel cannot take the record layer over (no TLS
	// upper-layer protocol for TCP, or not Linux). ProbeKTLS wraps it with the reason.
	ErrKTLSUnavailable = errors.New("tlsrec: kernel TLS unavailable")
	// ErrUnsupported: the handshake negotiated a version or cipher suite this package
	// cannot carry (it cannot happen with a Config the Runner restricted).
	ErrUnsupported = errors.New("tlsrec: unsupported version or cipher suite")
)

// TLS alert descriptions used here (RFC 8446 6, RFC 5246 7.2).
const (
	alertCloseNotify       uint8 = 0
	alertUnexpectedMessage uint8 = 10
	alertBadRecordMAC      uint8 = 20
	alertRecordOverflow    uint8 = 22
	alertIllegalParameter  uint8 = 47
	alertDecodeError       uint8 = 50
	alertProtocolVersion   uint8 = 70
	alertUserCanceled      uint8 = 90
	alertNoRenegotiation   uint8 = 100

	levelWarning uint8 = 1
	levelFatal   uint8 = 2
)

// An AlertError ends the read side: either the peer sent a fatal alert (Remote), or its
// input broke the protocol and Alert is queued for it (see Conn.Pending).
type AlertError struct {
	Alert  uint8
	Remote bool
	Err    error // the cause of a local alert: one of the Err vars above
}

func (e *AlertError) Error() string {
	if e.Remote {
		return fmt.Sprintf("tlsrec: peer sent alert %d", e.Alert)
	}
	return fmt.Sprintf("%v (sent alert %d)", e.Err, e.Alert)
}

func (e *AlertError) Unwrap() error { return e.Err }

func localAlert(alert uint8, cause error) *AlertError {
	return &AlertError{Alert: alert, Err: cause}
}
