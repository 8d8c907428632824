package live

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/livepoll/livepoll/internal/tlsrec"
	"github.com/livepoll/livepoll/pool"
)

// The read side of a TLS session (ServeTLS): what the socket gives is opened by the
// session's tlsrec.Conn into a pooled plaintext buffer, which is parsed exactly as a plain
// session's bytes are — the same turn bounds, and the same pending copy of what a paused
// turn left unparsed (plaintext). A record split across reads waits in the Conn's own
// pooled buffer, held only until it completes.
//
// How the TLS stream ends:
//   - the client's close_notify is its EOF (io.EOF to OnClose, Stats.Closed.EOF); our
//     close_notify answers it. If the turn stopped in the plaintext before it, the EOF is
//     reported once that plaintext is parsed (read sees the ended Conn).
//   - input that breaks TLS (a record that fails authentication, an oversize or malformed
//     record, renegotiation) gets the alert crypto/tls would send, and the session is
//     closed at once without a WebSocket close frame — nothing may follow a fatal alert.
//     OnClose gets an error wrapping ErrProtocol and the *tlsrec.AlertError
//     (Stats.Closed.Protocol).
//   - a fatal alert from the client is like a reset: OnClose gets an error wrapping the
//     *tlsrec.AlertError (Stats.Closed.Error).
//   - a socket EOF without close_notify is a plain EOF, as browsers often close that way.

// maxRecordPlain is the most plaintext one record adds beyond the bytes of a read: a
// record whose start came in an earlier read completes with this one.
const maxRecordPlain = 16 << 10

// tlsCompactAfter: a session that was silent this long before a read is compacted after
// it (a variable for tests).
var tlsCompactAfter = 10 * time.Second

// receivedTLS handles bytes from a TLS session's socket; as received, it reports whether
// parsing stopped before the end (the unparsed plaintext is in pending). silent is how
// long the socket had given nothing before these bytes.
func (s *Session) receivedTLS(p []byte, silent time.Duration) (stopped bool) {
	open := s.state.Load() == stateOpen
	if open {
		s.limits().takeBytes(&s.srv.opts, len(p)) // ByteRate counts what the socket gave
	}
	bp := pool.Get(len(p) + maxRecordPlain)
	plain, err := s.tls.Open((*bp)[:0], p)
	if len(plain) > 0 && open {
		stopped = s.feed(plain) // a paused turn copies the rest to pending
	}
	pool.Put(bp)
	// What Open made us owe goes out now — but our close_notify answering the client's
	// waits while plaintext before it is still to be parsed: the answers to it come first
	// (TLS 1.3 lets the client read after its close_notify; read sends it then).
	if s.tls.Pending() && !(err == io.EOF && stopped) {
		s.sendTLSPending()
	}
	switch {
	case err == nil:
		if silent >= tlsCompactAfter && !stopped {
			s.compactTLS()
		}
	case err == io.EOF:
		if !stopped {
			s.inputEnded(io.EOF)
		}
	default:
		s.inputEnded(tlsCloseReason(err))
	}
	return stopped
}

// compactTLS drops the Conn's two AEADs (about 1.5 KiB with AES-GCM, docs/tls.md) until
// the next Open or Seal makes the one it needs again. It runs after a read that ended a
// long silence — above all the pong that answers a keepalive ping, which comes only to
// a session silent for PingInterval — so an idle session is compacted within one
// PingInterval and stays so, while a busy one never pays for remaking its keys: it pays
// once per wake-up after tlsCompactAfter, a key expansion per direction. The read side
// is this Run's; the write side is taken with wmu (queued frames are sealed already).
func (s *Session) compactTLS() {
	s.wmu.Lock()
	s.tls.Compact()
	s.wmu.Unlock()
}

// tlsReadEnded reports whether the Conn's read side has ended (Open with no input returns
// its sticky end).
func (s *Session) tlsReadEnded() bool {
	_, err := s.tls.Open(nil, nil)
	return err != nil
}

// tlsCloseReason is what OnClose gets when TLS input ends the session.
func tlsCloseReason(err error) error {
	var alert *tlsrec.AlertError
	if errors.As(err, &alert) && !alert.Remote {
		return fmt.Errorf("%w: tls: %w", ErrProtocol, err)
	}
	return fmt.Errorf("live: tls: %w", err)
}
