//go:build unix

package live

import "golang.org/x/sys/unix"

// Thin wrappers over the socket syscalls the event loop uses, so the platform split lives
// in these files and not in the read and write paths.

var (
	errWouldBlock  error = unix.EAGAIN
	errInterrupted error = unix.EINTR
	errBadFD       error = unix.EBADF
)

func sysRead(fd int, p []byte) (int, error)  { return unix.Read(fd, p) }
func sysWrite(fd int, p []byte) (int, error) { return unix.Write(fd, p) }
func sysShutdownWrite(fd int) error          { return unix.Shutdown(fd, unix.SHUT_WR) }
func sysClose(fd int) error                  { return unix.Close(fd) }

// sysDup returns a close-on-exec duplicate of fd, sharing its open file description (so
// it stays non-blocking).
func sysDup(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }
