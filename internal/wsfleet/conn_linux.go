package wsfleet

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrClosed is returned by writes to a connection whose descriptor is closed.
var ErrClosed = errors.New("wsfleet: connection closed")

// Conn is one fleet connection. Once added to a Loop, the loop owns its descriptor:
// only the loop closes it. Write may be called from any goroutine.
type Conn struct {
	FD int // the raw, non-blocking socket; set before Loop.Add, read-only after
	ID int // the caller's index

	// Seq, Lost and Dup are for the Handler's bookkeeping (last sequence number seen,
	// gaps, repeats). While the loop runs, only its goroutine may touch them (Loop.Do
	// runs code there).
	Seq, Lost, Dup int64
	// BytesIn counts the bytes the loop has read from the socket (frames of every kind).
	BytesIn atomic.Int64

	tail []byte // unparsed bytes; loop goroutine only

	mu      sync.Mutex // serialises writes with each other and with closing FD
	open    bool       // FD is open and registered; guarded by mu
	closing atomic.Bool
	closed  atomic.Bool
	err     atomic.Pointer[error] // why it closed (nil: this side's closing handshake completed)
}

// Err returns why the connection closed: nil while it is open and after a closing
// handshake this side started completed; otherwise what Loop.OnClose got (a *CloseError
// with the server's close code, a *WriteError, syscall.ECONNRESET, an EOF, ...).
func (c *Conn) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Closed reports whether the connection's descriptor has been closed (by the server,
// on an error, after a closing handshake, or by CloseAll).
func (c *Conn) Closed() bool { return c.closed.Load() }

// Closing reports whether this side has started the closing handshake (Loop.Shutdown).
func (c *Conn) Closing() bool { return c.closing.Load() }

// Write writes b (whole frames) to the connection, waiting briefly whenever the socket
// buffer is full, for at most timeout. It returns ErrClosed once the descriptor is closed.
// It is safe for concurrent use; concurrent writes do not interleave.
func (c *Conn) Write(b []byte, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.open {
		return ErrClosed
	}
	if err := WriteAll(c.FD, b, timeout); err != nil {
		return &WriteError{Err: err}
	}
	return nil
}

// WriteError is a failed Conn.Write: the socket broke (EPIPE, ECONNRESET) or the server
// did not read for the whole timeout (ErrWriteBlocked). It tells a close that a write
// found from one a read found.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "wsfleet: write: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// WriteAll writes b to the non-blocking fd, waiting briefly whenever the
// socket buffer is full, for at most timeout. It is for descriptors that are not a
// Conn of a Loop; for those use Conn.Write.
func WriteAll(fd int, b []byte, timeout time.Duration) error {
	var deadline time.Time
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if n > 0 {
			b = b[n:]
			continue
		}
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if deadline.IsZero() {
				deadline = time.Now().Add(timeout)
			} else if time.Now().After(deadline) {
				return fmt.Errorf("wsfleet: write blocked for %v: %w", timeout, ErrWriteBlocked)
			}
			time.Sleep(50 * time.Microsecond)
			continue
		}
		if err == nil {
			err = syscall.EPIPE
		}
		return err
	}
	return nil
}

// ErrWriteBlocked is wrapped by write errors when the peer did not take the bytes in time.
var ErrWriteBlocked = errors.New("socket buffer full")
