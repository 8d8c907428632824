package wsfleet

import (
	"errors"
	"io"
	"strconv"
	"syscall"
)

// Reason names why a connection closed, for reports that count closes by reason:
//
//	close_<code>  the server sent a close frame with that status code (close_none: no code)
//	reset         the server reset the TCP connection (ECONNRESET on a read or write, or
//	              EPIPE on a read: a reset after the server's FIN)
//	eof           the server closed the TCP connection without a close frame
//	timeout       a write waited for the whole timeout: the server stopped reading
//	write_error   another write failure (EPIPE: the socket was already shut down)
//	close_timeout this side's closing handshake got no answer in time
//	protocol      the server sent a frame this client does not accept
//	other         anything else
//
// err is what Loop.OnClose got or Conn.Err returns; nil (a closing handshake this side
// started) is "".
func Reason(err error) string {
	var ce *CloseError
	var we *WriteError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce) && ce.Code == 0:
		return "close_none"
	case errors.As(err, &ce):
		return "close_" + strconv.Itoa(ce.Code)
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE) && !errors.As(err, &we):
		return "reset" // a read after the server's FIN and then its RST (for data sent after the FIN)
	case errors.Is(err, ErrWriteBlocked), errors.Is(err, syscall.ETIMEDOUT):
		return "timeout"
	case errors.As(err, &we):
		return "write_error"
	case errors.Is(err, ErrCloseTimeout):
		return "close_timeout"
	case errors.Is(err, ErrProtocol):
		return "protocol"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}
