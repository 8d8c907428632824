// Package poller reports readiness of raw, non-blocking file descriptors from one
// goroutine per Poller, using epoll on Linux and kqueue on macOS and the BSDs. It is the
// event-loop half of livepoll: the owner of an fd is told that the fd became readable or
// writable and hands the real work to a worker.
//
// # Edge-triggered contract
//
// Every fd is watched edge-triggered: an event is reported when the fd becomes ready, not
// while it stays ready. After a Readable event the owner must read until the read returns
// EAGAIN (or 0, for EOF); after a Writable event it must write until it has nothing left or
// the write returns EAGAIN. An owner that stops early (for example because its queue of jobs
// is full) must remember that the fd is still ready and come back to it on its own: no
// further event arrives until new data does or the send buffer drains again. Right after Add
// an event reports the fd's current state (usually Writable), so nothing that was already
// pending is lost.
//
// # Tokens
//
// Add returns a Token made of a slot index and a generation. The kernel hands the token
// back with each event, and the poller delivers the event only if the slot is still held
// by the same generation. Without this, an event the kernel reported for an fd that was then
// removed and closed could reach a new connection that happens to get the same fd number:
// one client's readiness would be acted on for another. A Token is never reused for
// another registration (until the slot's 32-bit generation wraps around).
//
// # Memory
//
// A registration costs one 24-byte slab entry (on 64-bit platforms): no goroutine, no
// closure and no map entry per fd. The poller takes the fd as a raw number and never owns
// it: the caller opens it, keeps it non-blocking, removes it and then closes it.
//
// livepoll's live package gets the number from the net.Conn with SyscallConn().Control,
// which neither duplicates the fd nor changes its blocking mode, then duplicates it with
// F_DUPFD_CLOEXEC (the copy shares the open file description, so it stays non-blocking)
// and closes the net.Conn. That drops the Go runtime poller's registration and the
// net.Conn's own memory, and leaves the session one descriptor that only it closes. A
// wrapper net.Conn that is not a *net.TCPConn or *net.UnixConn is kept (its Close may have
// work to do when the session ends), and so is any conn whose dup failed.
//
// # Why not mailru/easygo
//
// livepoll uses none of easygo's code, only ideas: one readiness interface with
// epoll and kqueue behind it. Its netpoll package has not changed since 2019 and does
// not fit here: Handle takes the fd through conn.File(), a dup whose os.File switches the
// shared open file description to blocking every time its Fd method is called (Start sets
// it back, Stop and Resume do not); its Epoll keys callbacks by fd number, so an event
// read for a closed fd can be dispatched to a new connection that reused the number; and
// it keeps a closure and a map entry per fd.
package poller

import (
	"errors"
	"fmt"
	"sync"
)

// Event is a set of readiness bits.
type Event uint32

const (
	// Readable means data (or EOF) can be read.
	Readable Event = 1 << iota
	// Writable means the send buffer has room again.
	Writable
	// Hangup means the peer closed its side or the socket has an error (EPOLLRDHUP,
	// EPOLLHUP or EPOLLERR; EV_EOF on kqueue). Read from the fd to learn which.
	Hangup
)

// String returns the set bits joined by "|", for logs and test failures.
func (e Event) String() string {
	if e == 0 {
		return "0"
	}
	s := ""
	for _, b := range [...]struct {
		bit  Event
		name string
	}{{Readable, "Readable"}, {Writable, "Writable"}, {Hangup, "Hangup"}} {
		if e&b.bit != 0 {
			if s != "" {
				s += "|"
			}
			s += b.name
			e &^= b.bit
		}
	}
	if e != 0 {
		if s != "" {
			s += "|"
		}
		s += fmt.Sprintf("%#x", uint32(e))
	}
	return s
}

// Handler receives readiness events for one registration.
//
// Ready runs on the poller's goroutine, one call at a time for the whole Poller, and may be
// called before the Add that registered it has returned. It must not block (hand the work
// to another goroutine instead), and it must not call Add, Remove or Close of the same
// Poller: those wait for Ready to return, so the call would deadlock.
type Handler interface {
	Ready(ev Event)
}

// Token identifies one registration. It embeds a slot index and a generation, so an event
// for a registration that was removed (and whose fd number may have been reused) is never
// delivered to a later registration. The zero Token is never valid.
type Token uint64

func makeToken(slot, gen uint32) Token { return Token(uint64(slot)<<32 | uint64(gen)) }

func (t Token) slot() uint32 { return uint32(t >> 32) }
func (t Token) gen() uint32  { return uint32(t) }

var (
	// ErrUnsupported is returned by New on platforms without epoll or kqueue.
	ErrUnsupported = errors.New("poller: not supported on this platform")
	// ErrClosed is returned by Add, Remove and Close once the Poller is closed (and by
	// any method of a Poller that did not come from New).
	ErrClosed = errors.New("poller: closed")
	// ErrNotRegistered is returned by Remove for a Token that is not (or no longer)
	// registered.
	ErrNotRegistered = errors.New("poller: not registered")
)

// A slab entry is the whole per-registration cost: 24 bytes on 64-bit platforms.
type entry struct {
	h   Handler // nil while the slot is free
	gen uint32  // generation of the current (or, if free, the next) registration
	// fd is the watched descriptor, which Remove needs to unregister it. While the slot
	// is free it holds the index of the next free slot instead (noFree ends the list).
	fd int32
}

const noFree = -1

// maxSlots bounds the slab so every slot index fits the platform's kernel cookie and the
// entry's int32 free-list link, and the all-ones cookie stays free for the wakeup.
const maxSlots = 1<<slotBits - 1

// Poller watches fds and calls their Handlers when they become ready. Add, Remove, Close
// and Len are safe for concurrent use; none of them may be called from a Handler.
type Poller struct {
	// mu guards the slab. The poller's goroutine holds it for reading while it calls
	// Handlers, so a Remove (which takes it for writing) returns only once its Handler
	// is no longer running and can never be called again.
	mu       sync.RWMutex
	entries  []entry
	freeHead int32 // first free slot, or noFree
	n        int   // live registrations
	running  bool  // set by New, cleared by Close
	loopErr  error // why the goroutine stopped on its own, if it did

	done   chan struct{} // closed when the goroutine exits
	kernel               // platform part: the epoll or kqueue fd and the wakeup
}

// New creates a poller and starts its goroutine. On platforms without epoll or kqueue it
// returns ErrUnsupported.
func New() (*Poller, error) {
	p := &Poller{freeHead: noFree, running: true, done: make(chan struct{})}
	if err := p.open(); err != nil {
		return nil, err
	}
	go p.loop()
	return p, nil
}

// Add watches fd, edge-triggered, for read, write and hangup readiness, and returns the
// Token that Remove takes. The fd must be non-blocking and must stay open until Remove
// has returned (closing it first lets a reused fd number be unregistered by mistake).
// An fd may be added at most once per Poller. h.Ready may run before Add returns.
// Add is safe for concurrent use.
func (p *Poller) Add(fd int, h Handler) (Token, error) {
	if h == nil {
		return 0, errors.New("poller: nil Handler")
	}
	if fd < 0 || fd > 1<<31-1 {
		return 0, fmt.Errorf("poller: bad fd %d", fd)
	}

	p.mu.Lock()
	if err := p.usableLocked(); err != nil {
		p.mu.Unlock()
		return 0, err
	}
	slot, err := p.allocLocked(int32(fd), h)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	t := makeToken(slot, p.entries[slot].gen)
	p.mu.Unlock()

	// The kernel call runs under the read lock, not the write lock, so registrations do
	// not stall dispatch; it is enough to keep Close from closing the kernel fd under us.
	p.mu.RLock()
	err = p.usableLocked()
	if err == nil {
		err = p.register(fd, t)
	}
	p.mu.RUnlock()
	if err != nil {
		p.mu.Lock()
		if p.running {
			p.freeLocked(slot)
		}
		p.mu.Unlock()
		return 0, err
	}
	return t, nil
}

// Remove stops watching the fd registered as t. When Remove returns, the Handler is not
// running and will never be called again for t. Removing twice returns ErrNotRegistered.
// Remove does not close the fd; close it after Remove returns. Remove is safe for
// concurrent use.
func (p *Poller) Remove(t Token) error {
	p.mu.Lock()
	if !p.running {
		p.mu.Unlock()
		return ErrClosed
	}
	slot := t.slot()
	if p.lookupLocked(slot, t.gen(), ^uint32(0)) == nil {
		p.mu.Unlock()
		return ErrNotRegistered
	}
	fd := int(p.entries[slot].fd)
	p.freeLocked(slot)
	p.mu.Unlock()

	// The slot is free and its generation bumped, so any event still queued for t is
	// dropped; the slot may already hold a new registration, which has another fd.
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.running {
		return nil // Close released the kernel fd and every registration with it
	}
	return p.unregister(fd)
}

// Replace makes h the Handler of the registration t, without a system call: the watch on
// its fd goes on, and events from now on go to h. When Replace returns, the previous
// Handler is not running and will never be called again for t. It returns
// ErrNotRegistered for a Token that is not registered. Replace is safe for concurrent use
// but, like Add and Remove, must not be called from a Handler.
func (p *Poller) Replace(t Token, h Handler) error {
	if h == nil {
		return errors.New("poller: nil Handler")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return ErrClosed
	}
	if p.lookupLocked(t.slot(), t.gen(), ^uint32(0)) == nil {
		return ErrNotRegistered
	}
	p.entries[t.slot()].h = h
	return nil
}

// Close stops the poller's goroutine, waits for it to exit and closes the kernel's epoll or
// kqueue fd and the wakeup. Registered fds are not closed. A second Close returns ErrClosed.
// Close is safe for concurrent use, but must not be called from a Handler.
func (p *Poller) Close() error {
	p.mu.Lock()
	if !p.running {
		p.mu.Unlock()
		return ErrClosed
	}
	p.running = false
	p.mu.Unlock()

	err := p.wake()
	if err == nil {
		<-p.done
	} else {
		select {
		case <-p.done: // the goroutine had already stopped on its own
		default:
			return fmt.Errorf("poller: waking the event loop: %w", err)
		}
	}
	if cerr := p.release(); cerr != nil && err == nil {
		err = cerr
	}

	p.mu.Lock()
	if p.loopErr != nil && err == nil {
		err = p.loopErr
	}
	p.entries, p.freeHead, p.n = nil, noFree, 0
	p.mu.Unlock()
	return err
}

// Len reports the number of registrations. It is safe for concurrent use.
func (p *Poller) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.n
}

func (p *Poller) usableLocked() error {
	if !p.running {
		return ErrClosed
	}
	if p.loopErr != nil {
		return p.loopErr
	}
	return nil
}

// allocLocked takes a free slot (the most recently freed first, as it is likely in cache)
// or grows the slab.
func (p *Poller) allocLocked(fd int32, h Handler) (uint32, error) {
	var slot uint32
	if p.freeHead != noFree {
		slot = uint32(p.freeHead)
		p.freeHead = p.entries[slot].fd
	} else {
		if len(p.entries) >= maxSlots {
			return 0, fmt.Errorf("poller: too many registrations (%d)", len(p.entries))
		}
		slot = uint32(len(p.entries))
		p.entries = append(p.entries, entry{gen: 1})
	}
	e := &p.entries[slot]
	e.h, e.fd = h, fd
	p.n++
	return slot, nil
}

func (p *Poller) freeLocked(slot uint32) {
	e := &p.entries[slot]
	e.h = nil
	e.gen++
	if e.gen == 0 { // keep the zero Token invalid
		e.gen = 1
	}
	e.fd = p.freeHead
	p.freeHead = int32(slot)
	p.n--
}

// lookupLocked returns the Handler registered in slot if its generation matches gen in the
// bits of genMask (all of them, except where the kernel cookie is too narrow), else nil.
func (p *Poller) lookupLocked(slot, gen, genMask uint32) Handler {
	if uint64(slot) >= uint64(len(p.entries)) {
		return nil
	}
	e := &p.entries[slot]
	if e.gen&genMask != gen&genMask {
		return nil
	}
	return e.h
}

// dispatchChunk bounds how many events are delivered under one hold of the read lock,
// so a Remove waits for at most that many Ready calls rather than a whole batch.
const dispatchChunk = 64

// Event buffer sizes: the buffer starts small and doubles whenever a wait fills it.
const (
	initialEvents = 256
	maxEvents     = 8192
)

// stopOnError records why the goroutine has to stop, so Add and Close can report it.
func (p *Poller) stopOnError(err error) {
	p.mu.Lock()
	p.loopErr = err
	p.mu.Unlock()
}
