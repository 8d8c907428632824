//go:build darwin || freebsd

package poller

import "golang.org/x/sys/unix"

// waker wakes the event loop with an EVFILT_USER event, which costs no descriptor.
type waker struct {
	kq int
}

// wakeIdent is the EVFILT_USER identifier; user events have their own ident space.
const wakeIdent = 0

func (w *waker) open(kq int) error {
	changes := newKevents(1)
	setKevent(&changes[0], wakeIdent, unix.EVFILT_USER, unix.EV_ADD|unix.EV_CLEAR, 0, wakeCookie)
	if err := kevent(kq, changes); err != nil {
		return err
	}
	w.kq = kq
	return nil
}

func (p *Poller) wake() error {
	changes := newKevents(1)
	setKevent(&changes[0], wakeIdent, unix.EVFILT_USER, 0, unix.NOTE_TRIGGER, wakeCookie)
	return kevent(p.waker.kq, changes)
}

// close has nothing to release: the user event goes away with the kqueue.
func (w *waker) close() error { return nil }
