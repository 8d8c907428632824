package tlsrec

import "errors"

// ErrKTLSUnavailable: the kernel cannot take the record layer over (no TLS upper-layer
// protocol for TCP, or not Linux). ProbeKTLS wraps it with the reason.
var ErrKTLSUnavailable = errors.New("tlsrec: kernel TLS unavailable")
