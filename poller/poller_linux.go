package poller

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// epoll_data is 64 bits on every Linux architecture, so it carries the whole Token: the
// slot in EpollEvent.Fd and the generation in EpollEvent.Pad. x/sys lays the struct out per
// architecture (packed after Events on 386 and amd64, 8-byte aligned elsewhere), and in each
// layout Fd and Pad are exactly the 8 bytes of epoll_data; these arrays fail to compile if
// a layout ever disagrees.
var (
	_ [unsafe.Sizeof(unix.EpollEvent{}) - unsafe.Offsetof(unix.EpollEvent{}.Fd) - 8]struct{}
	_ [8 - (unsafe.Sizeof(unix.EpollEvent{}) - unsafe.Offsetof(unix.EpollEvent{}.Fd))]struct{}
	_ [unsafe.Offsetof(unix.EpollEvent{}.Pad) - unsafe.Offsetof(unix.EpollEvent{}.Fd) - 4]struct{}
	_ [4 - (unsafe.Offsetof(unix.EpollEvent{}.Pad) - unsafe.Offsetof(unix.EpollEvent{}.Fd))]struct{}
)

// slotBits: the slot has 32 bits of epoll_data, but the entry's free-list link is an int32.
const slotBits = 31

// wakeSlot marks the eventfd's events; maxSlots keeps it out of reach of real slots.
const wakeSlot = ^uint32(0)

const watchEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

type kernel struct {
	epfd   int
	wakefd int // eventfd written by Close
	// park is a non-blocking duplicate of epfd registered with the Go runtime's network
	// poller, so the loop waits for events in the runtime (no OS thread held in
	// epoll_wait): nil where that registration failed, and the loop blocks in epoll_wait.
	park *os.File
	// parked counts the waits that ended in the runtime's poller (tests check that the
	// loop really waits there).
	parked atomic.Uint64
}

func (p *Poller) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("eventfd", err)
	}
	ev := tokenEvent(unix.EPOLLIN, makeToken(wakeSlot, wakeSlot))
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	p.epfd, p.wakefd = epfd, wakefd
	if waitInRuntime {
		p.park = parkFile(epfd)
	}
	return nil
}

// waitInRuntime makes the loop wait for events in the Go runtime's poller rather than in
// a blocking epoll_wait. A blocking epoll_wait holds an OS thread in the kernel; the
// runtime hands that thread's P to another thread while it waits and has to find one
// again when it returns, a futex wake and two context switches per wakeup of the loop.
// Measured with closed-loop echo (docs/architecture.md): 17.1-18.2 µs of server CPU per
// round trip instead of 19.7-20.8. Tests switch it off to cover the blocking path.
var waitInRuntime = true

// parkFile returns a duplicate of epfd that the Go runtime's poller watches, or nil. An
// epoll descriptor is readable while its ready list is not empty, and the kernel wakes
// the runtime's (edge-triggered) watch each time an event joins that list.
func parkFile(epfd int) *os.File {
	dup, err := unix.FcntlInt(uintptr(epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil
	}
	f := os.NewFile(uintptr(dup), "epoll")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close() // not in the runtime's poller: a deadline is refused
		return nil
	}
	return f
}

func tokenEvent(events uint32, t Token) unix.EpollEvent {
	return unix.EpollEvent{Events: events, Fd: int32(t.slot()), Pad: int32(t.gen())}
}

func (p *Poller) register(fd int, t Token) error {
	ev := tokenEvent(watchEvents, t)
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("poller: add fd %d: %w", fd, os.NewSyscallError("epoll_ctl", err))
	}
	return nil
}

func (p *Poller) unregister(fd int) error {
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EBADF) {
		// Already gone: the fd was closed before Remove, which also drops it from epoll.
		return nil
	}
	return fmt.Errorf("poller: remove fd %d: %w", fd, os.NewSyscallError("epoll_ctl", err))
}

func (p *Poller) wake() error {
	one := [8]byte{1}
	for {
		_, err := unix.Write(p.wakefd, one[:])
		switch err {
		case unix.EINTR:
			continue
		case nil, unix.EAGAIN: // EAGAIN: the counter is already non-zero, a wakeup is pending
			return nil
		}
		return os.NewSyscallError("write", err)
	}
}

func (p *Poller) release() error {
	if p.park != nil {
		p.park.Close()
	}
	err := unix.Close(p.wakefd)
	if cerr := unix.Close(p.epfd); err == nil {
		err = cerr
	}
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// parkCheck bounds one wait in the runtime: should the kernel ever fail to wake the
// runtime's watch of the epoll descriptor (a nested-epoll wakeup lost), the loop looks
// again after this long instead of hanging.
var parkCheck = time.Second // a variable for tests

func (p *Poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, initialEvents)
	var rc syscall.RawConn
	if p.park != nil {
		var err error
		if rc, err = p.park.SyscallConn(); err != nil {
			rc = nil
		}
	}
	// One closure for the whole loop (a closure passed to an interface method escapes:
	// one made per wait would be an allocation per wakeup).
	var n int
	var err error
	look := func(uintptr) bool {
		n, err = unix.EpollWait(p.epfd, events, 0)
		return err != nil || n > 0
	}
	var deadline time.Time
	for {
		n, err = 0, nil
		if rc != nil {
			// Park in the runtime. RawConn.Read clears the runtime's readiness before it
			// calls look, so look must come first (an event that came after the last look
			// would otherwise be lost) and only then wait.
			if now := time.Now(); deadline.Sub(now) < parkCheck/2 {
				deadline = now.Add(parkCheck)
				if derr := p.park.SetReadDeadline(deadline); derr != nil {
					rc = nil
					continue
				}
			}
			werr := rc.Read(look)
			if errors.Is(werr, os.ErrDeadlineExceeded) {
				deadline = time.Time{}
				continue
			}
			if werr != nil {
				rc = nil // cannot park in the runtime after all: block in epoll_wait
				continue
			}
			p.parked.Add(1)
		} else {
			n, err = unix.EpollWait(p.epfd, events, -1)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.stopOnError(fmt.Errorf("poller: event loop stopped: %w", os.NewSyscallError("epoll_wait", err)))
			return
		}
		if p.dispatch(events[:n]) {
			return
		}
		if n == len(events) && len(events) < maxEvents {
			events = make([]unix.EpollEvent, 2*len(events)) // look sees the new buffer
		}
	}
}

// dispatch delivers a batch of events to their Handlers and reports whether the wakeup
// (sent only by Close) was among them.
func (p *Poller) dispatch(events []unix.EpollEvent) (woken bool) {
	for len(events) > 0 {
		chunk := events[:min(len(events), dispatchChunk)]
		events = events[len(chunk):]
		p.mu.RLock()
		for i := range chunk {
			ev := &chunk[i]
			slot := uint32(ev.Fd)
			if slot == wakeSlot {
				woken = true
				continue
			}
			if h := p.lookupLocked(slot, uint32(ev.Pad), ^uint32(0)); h != nil {
				h.Ready(epollEvent(ev.Events))
			}
		}
		p.mu.RUnlock()
	}
	return woken
}

func epollEvent(bits uint32) Event {
	var ev Event
	if bits&unix.EPOLLIN != 0 {
		ev |= Readable
	}
	if bits&unix.EPOLLOUT != 0 {
		ev |= Writable
	}
	if bits&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ev |= Hangup
	}
	return ev
}
