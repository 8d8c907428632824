//go:build !linux

package tlsrec

import (
	"fmt"
	"runtime"
)

// ProbeKTLS reports whether kernel TLS could take the record layer over: only Linux
// offers it (TCP_ULP "tls"), so here it always returns ErrKTLSUnavailable.
func ProbeKTLS() error {
	return fmt.Errorf("%w: kernel TLS is Linux only, this is %s", ErrKTLSUnavailable, runtime.GOOS)
}
