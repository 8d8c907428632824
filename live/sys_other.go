//go:build !unix

package live

import "errors"

// Without a unix socket API the event loop does not run: poller.New reports
// ErrUnsupported, so the handler answers 500 before these are ever reached.

var (
	errWouldBlock  = errors.New("live: would block")
	errInterrupted = errors.New("live: interrupted")
	errBadFD       = errors.New("live: bad descriptor")
)

func sysRead(int, []byte) (int, error)     { return 0, errors.ErrUnsupported }
func sysWrite(int, []byte) (int, error)    { return 0, errors.ErrUnsupported }
func sysWritev(int, [][]byte) (int, error) { return 0, errors.ErrUnsupported }
func sysShutdownWrite(int) error           { return errors.ErrUnsupported }
func sysClose(int) error                   { return errors.ErrUnsupported }
func sysDup(int) (int, error)              { return 0, errors.ErrUnsupported }
