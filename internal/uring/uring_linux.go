//go:build linux

package uring

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxBufs is the most buffers one send carries; a caller with more sends the rest itself.
const MaxBufs = 8

// Kernel ABI (include/uapi/linux/io_uring.h).
const (
	opSendmsg             = 9
	opRecv                = 27
	offSQRing             = 0
	offCQRing             = 0x8000000
	offSQEs               = 0x10000000
	enterGetEvents        = 1 << 0
	featSingleMmap        = 1 << 0
	sqeSize               = 64
	cqeSize               = 16
	sqOffHead             = 0
	sqOffTail             = 1
	sqOffMask             = 2
	sqOffArray            = 6
	cqOffHead             = 0
	cqOffTail             = 1
	cqOffMask             = 2
	cqOffCQEs             = 5
	sendFlags      uint32 = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
)

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  [10]uint32
	cqOff                                                                  [10]uint32
}

type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	msgFlags uint32
	userData uint64
	bufIndex uint16
	pers     uint16
	fileIdx  int32
	addr3    uint64
	pad      uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Ring is one io_uring with room for Size sends per Submit. It is not safe for concurrent
// use: give each goroutine its own.
type Ring struct {
	fd      int
	ring    []byte // the SQ and CQ rings (one mapping with IORING_FEAT_SINGLE_MMAP)
	cqRing  []byte // the CQ ring when the kernel maps it separately
	sqesMem []byte

	sqHead, sqTail, sqMask *uint32
	sqes                   []sqe
	cqHead, cqTail         *uint32
	cqMask                 uint32
	cqes                   []cqe

	size   int
	n      int    // sends prepared since the last Submit
	failed bool   // io_uring_enter failed: the ring's state is unknown, it takes no more sends
	probe  []byte // CheckNowait's buffer, which a send the kernel kept waiting may read
	msgs   []unix.Msghdr
	iovs   []unix.Iovec // MaxBufs per send
}

// New returns a ring for up to size sends per Submit.
func New(size int) (*Ring, error) {
	if size < 1 || size > 4096 {
		return nil, fmt.Errorf("uring: size %d out of range 1..4096", size)
	}
	var p params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(size), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	r := &Ring{fd: int(fd), size: size}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	r.msgs = make([]unix.Msghdr, size)
	r.iovs = make([]unix.Iovec, size*MaxBufs)
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	if p.sqEntries < uint32(r.size) || p.cqEntries < uint32(r.size) {
		return errors.New("uring: the kernel gave smaller rings than asked")
	}
	sqLen := int(p.sqOff[sqOffArray] + p.sqEntries*4)
	cqLen := int(p.cqOff[cqOffCQEs] + p.cqEntries*cqeSize)
	single := p.features&featSingleMmap != 0
	if single {
		sqLen = max(sqLen, cqLen)
	}
	var err error
	if r.ring, err = mmap(r.fd, offSQRing, sqLen); err != nil {
		return err
	}
	cq := r.ring
	if !single {
		if r.cqRing, err = mmap(r.fd, offCQRing, cqLen); err != nil {
			return err
		}
		cq = r.cqRing
	}
	if r.sqesMem, err = mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize); err != nil {
		return err
	}
	sq := unsafe.Pointer(&r.ring[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff[sqOffHead]))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff[sqOffTail]))
	r.sqMask = (*uint32)(unsafe.Add(sq, p.sqOff[sqOffMask]))
	// The index array maps ring slots to SQEs; the identity map is set once.
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.sqOff[sqOffArray])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqesMem[0])), p.sqEntries)
	cqp := unsafe.Pointer(&cq[0])
	r.cqHead = (*uint32)(unsafe.Add(cqp, p.cqOff[cqOffHead]))
	r.cqTail = (*uint32)(unsafe.Add(cqp, p.cqOff[cqOffTail]))
	r.cqMask = *(*uint32)(unsafe.Add(cqp, p.cqOff[cqOffMask]))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(cqp, p.cqOff[cqOffCQEs])), p.cqEntries)
	return nil
}

func mmap(fd int, off int64, n int) ([]byte, error) {
	b, err := unix.Mmap(fd, off, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return b, nil
}

// Close releases the ring.
func (r *Ring) Close() error {
	for _, b := range [][]byte{r.sqesMem, r.cqRing, r.ring} {
		if b != nil {
			_ = unix.Munmap(b)
		}
	}
	r.sqesMem, r.cqRing, r.ring = nil, nil, nil
	if r.fd >= 0 {
		err := unix.Close(r.fd)
		r.fd = -1
		return err
	}
	return nil
}

// Size is how many sends fit in one Submit.
func (r *Ring) Size() int { return r.size }

// Prepare queues a send of bufs (at most MaxBufs of them; the rest are ignored, and so are
// empty ones) to fd and returns its index in the results of the next Submit. It returns -1
// when the ring is full. The buffers must stay unchanged until Submit returns.
func (r *Ring) Prepare(fd int, bufs [][]byte) int {
	if r.n == r.size || r.failed {
		return -1
	}
	i := r.n
	iov := r.iovs[i*MaxBufs : i*MaxBufs+MaxBufs]
	k := 0
	for _, b := range bufs {
		if k == MaxBufs {
			break
		}
		if len(b) == 0 {
			continue
		}
		iov[k].Base = &b[0]
		iov[k].SetLen(len(b))
		k++
	}
	m := &r.msgs[i]
	*m = unix.Msghdr{}
	if k > 0 {
		m.Iov = &iov[0]
	}
	m.SetIovlen(k)
	tail := atomic.LoadUint32(r.sqTail)
	r.sqes[(tail+uint32(i))&*r.sqMask] = sqe{
		opcode:   opSendmsg,
		fd:       int32(fd),
		addr:     uint64(uintptr(unsafe.Pointer(m))),
		len:      1,
		msgFlags: sendFlags,
		userData: uint64(i),
	}
	r.n++
	return i
}

// PrepareRecv queues a receive of up to len(buf) bytes from fd, with MSG_DONTWAIT (an
// empty socket answers -EAGAIN at once; see CheckRecvNowait), and returns its index in the
// results of the next Submit: the bytes received, 0 at the end of the stream, or a negated
// errno. It returns -1 when the ring is full or buf is empty. buf must stay reachable and
// untouched until Submit returns.
func (r *Ring) PrepareRecv(fd int, buf []byte) int {
	if r.n == r.size || r.failed || len(buf) == 0 {
		return -1
	}
	i := r.n
	tail := atomic.LoadUint32(r.sqTail)
	r.sqes[(tail+uint32(i))&*r.sqMask] = sqe{
		opcode:   opRecv,
		fd:       int32(fd),
		addr:     uint64(uintptr(unsafe.Pointer(&buf[0]))),
		len:      uint32(len(buf)),
		msgFlags: unix.MSG_DONTWAIT,
		userData: uint64(i),
	}
	r.n++
	return i
}

// NotSent is the result Submit gives a send the kernel never took.
const NotSent = math.MinInt32

// Submit sends everything prepared with one io_uring_enter (more only if interrupted or
// briefly refused) and stores each send's result in res by index: bytes written, a
// negated errno (-EAGAIN: the socket's buffer is full), or NotSent. len(res) must be at
// least the number prepared. An error means the ring failed: the sends it reports as
// NotSent never reached the kernel and the caller writes them itself; the others were
// done (their results are in res). A failed ring takes no more sends (Close it).
func (r *Ring) Submit(res []int32) error {
	n := r.n
	if n == 0 {
		return nil
	}
	for i := range res[:n] {
		res[i] = NotSent
	}
	head0 := atomic.LoadUint32(r.sqHead)
	tail := atomic.LoadUint32(r.sqTail)
	atomic.StoreUint32(r.sqTail, tail+uint32(n)) // publishes the SQEs written above
	var err error
	refused := 0
	for done := 0; done < n; {
		// The kernel's head says how many entries it has taken, even after an error.
		taken := int(atomic.LoadUint32(r.sqHead) - head0)
		toSubmit, waitFor := n-taken, n-done
		if err != nil {
			// Submitting failed: only wait for what the kernel took, so that every
			// result the caller acts on is known.
			if taken <= done {
				break
			}
			toSubmit, waitFor = 0, taken-done
		}
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(waitFor), enterGetEvents, 0, 0)
		done += r.reap(res)
		switch errno {
		case 0, unix.EINTR:
		case unix.EAGAIN, unix.EBUSY: // the kernel is short of memory, or its CQ is full
			if refused++; refused > 3 && err == nil {
				err = os.NewSyscallError("io_uring_enter", errno)
			}
		default:
			if err != nil { // waiting failed too: what was taken is unknown
				r.failed = true
				r.discard()
				return err
			}
			err = os.NewSyscallError("io_uring_enter", errno)
		}
	}
	if err != nil {
		r.failed = true // entries it did not take stay in its queue: never submit again
	}
	r.discard()
	return err
}

// discard forgets the prepared sends and the references to the caller's buffers.
func (r *Ring) discard() {
	clear(r.iovs[:r.n*MaxBufs])
	clear(r.msgs[:r.n])
	r.n = 0
}

// reap copies completed results to res and reports how many there were.
func (r *Ring) reap(res []int32) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	k := 0
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		if i := int(c.userData); i < len(res) {
			res[i] = c.res
		}
		k++
	}
	atomic.StoreUint32(r.cqHead, head)
	return k
}

// CheckNowait tells whether this kernel completes a send to a full socket at once, with
// EAGAIN, instead of waiting for room: Submit relies on that never to wait for a slow
// client. It fills one end of a socket pair, submits one send without waiting and looks
// for its completion. Call it on a fresh ring; a ring that fails it must be closed (that
// cancels the waiting send).
func (r *Ring) CheckNowait() error {
	fds, err := probePair()
	if err != nil {
		return err
	}
	defer unix.Close(fds[1])
	defer unix.Close(fds[0])
	r.probe = make([]byte, 64<<10) // kept until Close: a waiting send may still read it
	for {
		if _, err := unix.Write(fds[0], r.probe); err == unix.EAGAIN {
			break
		} else if err != nil {
			return os.NewSyscallError("write", err)
		}
	}
	return r.checkAtOnce("send to a full socket", r.Prepare(fds[0], [][]byte{r.probe[:1]}))
}

// CheckRecvNowait tells whether this kernel completes a receive from an empty socket at
// once, with EAGAIN, instead of waiting for data: a caller that receives from many
// sockets in one Submit relies on that never to wait for one that has nothing. The same
// rules as for CheckNowait apply.
func (r *Ring) CheckRecvNowait() error {
	fds, err := probePair()
	if err != nil {
		return err
	}
	defer unix.Close(fds[1])
	defer unix.Close(fds[0])
	r.probe = make([]byte, 64) // kept until Close: a waiting receive may still write it
	return r.checkAtOnce("receive from an empty socket", r.PrepareRecv(fds[0], r.probe))
}

// probePair is the non-blocking socket pair a check probes the kernel with.
func probePair() ([2]int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fds, os.NewSyscallError("socketpair", err)
	}
	return fds, nil
}

// checkAtOnce submits the one operation prepared (at index i, which must be 0) without
// waiting and checks that it completed at once with EAGAIN.
func (r *Ring) checkAtOnce(what string, i int) error {
	if i != 0 {
		r.discard()
		return errors.New("uring: the check needs a ring with nothing prepared")
	}
	tail := atomic.LoadUint32(r.sqTail)
	atomic.StoreUint32(r.sqTail, tail+1)
	res := []int32{NotSent}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 1, 0, 0, 0, 0)
	got := r.reap(res)
	r.discard()
	switch {
	case errno != 0:
		r.failed = true
		return os.NewSyscallError("io_uring_enter", errno)
	case got == 0:
		r.failed = true
		return fmt.Errorf("uring: this kernel lets a non-blocking %s wait", what)
	case res[0] != -int32(unix.EAGAIN):
		r.failed = true
		return fmt.Errorf("uring: a %s completed with %d, want -EAGAIN", what, res[0])
	}
	return nil
}
