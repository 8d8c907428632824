//go:build netbsd || openbsd || dragonfly

package poller

import (
	"os"

	"golang.org/x/sys/unix"
)

// waker wakes the event loop by writing to a pipe: x/sys/unix does not define EVFILT_USER
// for these systems (and OpenBSD lacks it).
type waker struct {
	r, w int
}

func (w *waker) open(kq int) error {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	changes := newKevents(1)
	setKevent(&changes[0], fds[0], unix.EVFILT_READ, unix.EV_ADD, 0, wakeCookie)
	if err := kevent(kq, changes); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return err
	}
	w.r, w.w = fds[0], fds[1]
	return nil
}

func (p *Poller) wake() error {
	for {
		_, err := unix.Write(p.waker.w, []byte{1})
		switch err {
		case unix.EINTR:
			continue
		case nil, unix.EAGAIN: // EAGAIN: the pipe is full, a wakeup is pending
			return nil
		}
		return os.NewSyscallError("write", err)
	}
}

func (w *waker) close() error {
	err := unix.Close(w.r)
	if cerr := unix.Close(w.w); err == nil {
		err = cerr
	}
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
