//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package poller

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kevent_t.Udata is pointer-sized (a *byte on most BSDs, an integer on NetBSD). It carries
// the registration as a plain number, so it must never be seen by the garbage collector as
// a pointer: a token can look like an address inside the Go heap. Every Kevent_t this file
// touches therefore lives in pointer-free memory (see newKevents), and Udata is only read
// and written through a *uintptr, which also keeps write barriers away from it.
var (
	_ [unsafe.Sizeof(unix.Kevent_t{}.Udata) - unsafe.Sizeof(uintptr(0))]struct{}
	_ [unsafe.Sizeof(uintptr(0)) - unsafe.Sizeof(unix.Kevent_t{}.Udata)]struct{}
)

const ptrBits = 32 << (^uintptr(0) >> 63)

// On 64-bit platforms Udata holds the whole Token. On 32-bit ones it holds the slot above
// the low cookieGenBits bits of the generation: a stale event is then misdelivered only if
// its slot was reused exactly a multiple of 4096 times between the kernel reporting it and
// the dispatch, which happens within one batch.
const (
	cookieGenBits = 12
	slotBits      = 31 - 11*(64-ptrBits)/32 // 31 on 64-bit, 20 on 32-bit
)

// wakeCookie marks the wakeup's events; maxSlots keeps it out of reach of real slots.
const wakeCookie = ^uintptr(0)

func cookie(t Token) uintptr {
	if ptrBits == 64 {
		return uintptr(t)
	}
	return uintptr(t.slot())<<cookieGenBits | uintptr(t.gen()&(1<<cookieGenBits-1))
}

func fromCookie(c uintptr) (slot, gen, genMask uint32) {
	if ptrBits == 64 {
		t := Token(c)
		return t.slot(), t.gen(), ^uint32(0)
	}
	return uint32(c >> cookieGenBits), uint32(c) & (1<<cookieGenBits - 1), 1<<cookieGenBits - 1
}

func udata(ev *unix.Kevent_t) *uintptr { return (*uintptr)(unsafe.Pointer(&ev.Udata)) }

// newKevents returns n zeroed Kevent_t backed by pointer-free memory (see above).
func newKevents(n int) []unix.Kevent_t {
	const size = unsafe.Sizeof(unix.Kevent_t{})
	words := make([]uint64, (uintptr(n)*size+7)/8)
	return unsafe.Slice((*unix.Kevent_t)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

func setKevent(ev *unix.Kevent_t, ident, filter, flags int, fflags uint32, c uintptr) {
	unix.SetKevent(ev, ident, filter, flags)
	ev.Fflags = fflags
	*udata(ev) = c
}

type kernel struct {
	kq int
	waker
}

func (p *Poller) open() error {
	kq, err := unix.Kqueue()
	if err != nil {
		return os.NewSyscallError("kqueue", err)
	}
	unix.CloseOnExec(kq)
	if err := p.waker.open(kq); err != nil {
		unix.Close(kq)
		return err
	}
	p.kq = kq
	return nil
}

func (p *Poller) register(fd int, t Token) error {
	changes := newKevents(2)
	setKevent(&changes[0], fd, unix.EVFILT_READ, unix.EV_ADD|unix.EV_CLEAR, 0, cookie(t))
	setKevent(&changes[1], fd, unix.EVFILT_WRITE, unix.EV_ADD|unix.EV_CLEAR, 0, cookie(t))
	if err := kevent(p.kq, changes); err != nil {
		// One filter may have been added before the other failed.
		p.unregister(fd)
		return fmt.Errorf("poller: add fd %d: %w", fd, err)
	}
	return nil
}

func (p *Poller) unregister(fd int) error {
	// Delete the filters one at a time, so a missing one does not hide the other.
	var first error
	for _, filter := range [...]int{unix.EVFILT_READ, unix.EVFILT_WRITE} {
		changes := newKevents(1)
		setKevent(&changes[0], fd, filter, unix.EV_DELETE, 0, 0)
		err := kevent(p.kq, changes)
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBADF) && first == nil {
			// ENOENT or EBADF: the fd was closed before Remove, which also drops its filters.
			first = fmt.Errorf("poller: remove fd %d: %w", fd, err)
		}
	}
	return first
}

// kevent applies changes, retrying if a signal interrupts it.
func kevent(kq int, changes []unix.Kevent_t) error {
	for {
		_, err := unix.Kevent(kq, changes, nil, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("kevent", err)
		}
		return nil
	}
}

func (p *Poller) release() error {
	err := p.waker.close()
	if cerr := unix.Close(p.kq); cerr != nil && err == nil {
		err = os.NewSyscallError("close", cerr)
	}
	return err
}

func (p *Poller) loop() {
	defer close(p.done)
	events := newKevents(initialEvents)
	for {
		n, err := unix.Kevent(p.kq, nil, events, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.stopOnError(fmt.Errorf("poller: event loop stopped: %w", os.NewSyscallError("kevent", err)))
			return
		}
		if p.dispatch(events[:n]) {
			return
		}
		if n == len(events) && len(events) < maxEvents {
			events = newKevents(2 * len(events))
		}
	}
}

// dispatch delivers a batch of events to their Handlers and reports whether the wakeup
// (sent only by Close) was among them. The read and write filters of one fd report
// separately; when they are adjacent in the batch they become one Ready call.
//
// Events are accessed through pointers, never copied: a copied Kevent_t would hold its
// Udata in a pointer-typed variable the garbage collector scans.
func (p *Poller) dispatch(events []unix.Kevent_t) (woken bool) {
	for len(events) > 0 {
		chunk := events[:min(len(events), dispatchChunk)]
		events = events[len(chunk):]
		p.mu.RLock()
		for i := 0; i < len(chunk); i++ {
			c := *udata(&chunk[i])
			if c == wakeCookie {
				woken = true
				continue
			}
			bits := keventEvent(&chunk[i])
			for i+1 < len(chunk) && *udata(&chunk[i+1]) == c {
				i++
				bits |= keventEvent(&chunk[i])
			}
			slot, gen, genMask := fromCookie(c)
			if h := p.lookupLocked(slot, gen, genMask); h != nil {
				h.Ready(bits)
			}
		}
		p.mu.RUnlock()
	}
	return woken
}

func keventEvent(ev *unix.Kevent_t) Event {
	var bits Event
	switch int(ev.Filter) {
	case unix.EVFILT_READ:
		bits = Readable
	case unix.EVFILT_WRITE:
		bits = Writable
	}
	if ev.Flags&(unix.EV_EOF|unix.EV_ERROR) != 0 {
		bits |= Hangup
	}
	return bits
}
