//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package poller

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// waitTimeout bounds every wait for an event; quiet is how long a test watches for events
// that must not come.
const (
	waitTimeout = 5 * time.Second
	quiet       = 100 * time.Millisecond
)

// recorder is a Handler that accumulates the bits it is given.
type recorder struct {
	bits  atomic.Uint32
	calls atomic.Int64
	sig   chan struct{}
}

func newRecorder() *recorder { return &recorder{sig: make(chan struct{}, 1)} }

func (r *recorder) Ready(ev Event) {
	r.bits.Or(uint32(ev))
	r.calls.Add(1)
	select {
	case r.sig <- struct{}{}:
	default:
	}
}

// take returns the bits seen so far and clears them.
func (r *recorder) take() Event { return Event(r.bits.Swap(0)) }

// wait blocks until every bit of want has been seen, and returns all bits seen.
func (r *recorder) wait(t testing.TB, want Event) Event {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		if got := Event(r.bits.Load()); got&want == want {
			return got
		}
		select {
		case <-r.sig:
		case <-timer.C:
			t.Fatalf("no %v within %v; saw %v", want, waitTimeout, Event(r.bits.Load()))
		}
	}
}

func newPoller(t testing.TB) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func mustAdd(t testing.TB, p *Poller, fd int, h Handler) Token {
	t.Helper()
	tok, err := p.Add(fd, h)
	if err != nil {
		t.Fatalf("Add(%d): %v", fd, err)
	}
	return tok
}

// rawSocketpair returns a connected pair of non-blocking stream sockets that the caller
// closes.
func rawSocketpair(t testing.TB) (a, b int) {
	t.Helper()
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	return fds[0], fds[1]
}

// peer is the far end of a watched socket, used through the Go runtime as an application
// would.
type peer interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
}

// pair is a watched fd and its peer. The watched side stays referenced through keep, so
// no finalizer closes it under the test.
type pair struct {
	fd   int
	peer peer
	keep any
}

type transport struct {
	name string
	open func(t testing.TB) pair
}

var transports = []transport{
	{"socketpair", openSocketpair},
	{"tcp", openTCP},
}

func openSocketpair(t testing.TB) pair {
	a, b := rawSocketpair(t)
	// os.NewFile hands the non-blocking peer to the runtime poller, so deadlines work.
	f := os.NewFile(uintptr(b), "peer")
	t.Cleanup(func() { f.Close(); unix.Close(a) })
	return pair{fd: a, peer: f}
}

func openTCP(t testing.TB) pair {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	dialed, err := net.DialTimeout("tcp", ln.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	r := <-accepted
	if r.err != nil {
		dialed.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { dialed.Close(); r.c.Close() })
	raw, err := r.c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := raw.Control(func(s uintptr) { fd = int(s) }); err != nil {
		t.Fatal(err)
	}
	return pair{fd: fd, peer: dialed.(*net.TCPConn), keep: r.c}
}

// drainFD reads fd until EAGAIN and returns how many bytes it read and whether it saw EOF.
func drainFD(t testing.TB, fd int) (n int, eof bool) {
	t.Helper()
	buf := make([]byte, 64<<10)
	for {
		m, err := unix.Read(fd, buf)
		switch {
		case err == unix.EAGAIN:
			return n, false
		case err == unix.EINTR:
			continue
		case err != nil:
			t.Fatalf("read: %v", err)
		case m == 0:
			return n, true
		}
		n += m
	}
}

// fillFD writes to fd until the send buffer is full and returns how much it wrote.
func fillFD(t testing.TB, fd int) int {
	t.Helper()
	buf := make([]byte, 64<<10)
	n := 0
	for {
		m, err := unix.Write(fd, buf)
		switch {
		case err == unix.EAGAIN:
			return n
		case err == unix.EINTR:
			continue
		case err != nil:
			t.Fatalf("write: %v", err)
		}
		n += m
	}
}

func peerWrite(t testing.TB, p peer, s string) {
	t.Helper()
	if _, err := p.Write([]byte(s)); err != nil {
		t.Fatalf("peer write: %v", err)
	}
}

func TestEvents(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()

			t.Run("readable after the peer writes", func(t *testing.T) {
				t.Parallel()
				p, c, r := newPoller(t), tr.open(t), newRecorder()
				mustAdd(t, p, c.fd, r)
				r.wait(t, Writable) // the state at Add
				r.take()
				peerWrite(t, c.peer, "hello")
				r.wait(t, Readable)
				if n, eof := drainFD(t, c.fd); n != 5 || eof {
					t.Fatalf("read %d bytes (eof %v), want 5", n, eof)
				}
			})

			t.Run("writable after the peer drains a full buffer", func(t *testing.T) {
				t.Parallel()
				p, c, r := newPoller(t), tr.open(t), newRecorder()
				mustAdd(t, p, c.fd, r)
				r.wait(t, Writable)
				written := fillFD(t, c.fd)
				time.Sleep(quiet) // let the kernel report anything the writes caused
				r.take()

				c.peer.SetReadDeadline(time.Now().Add(waitTimeout))
				if _, err := io.ReadFull(c.peer, make([]byte, written)); err != nil {
					t.Fatalf("peer read of %d bytes: %v", written, err)
				}
				r.wait(t, Writable)
			})

			t.Run("hangup when the peer closes", func(t *testing.T) {
				t.Parallel()
				p, c, r := newPoller(t), tr.open(t), newRecorder()
				mustAdd(t, p, c.fd, r)
				r.wait(t, Writable)
				r.take()
				c.peer.Close()
				if got := r.wait(t, Hangup); got&Readable == 0 {
					t.Errorf("got %v at peer close, want Readable too (EOF is readable)", got)
				}
				if n, eof := drainFD(t, c.fd); n != 0 || !eof {
					t.Fatalf("read %d bytes, eof %v; want EOF", n, eof)
				}
			})

			t.Run("edge-triggered: no repeats without new data", func(t *testing.T) {
				t.Parallel()
				p, c, r := newPoller(t), tr.open(t), newRecorder()
				mustAdd(t, p, c.fd, r)
				r.wait(t, Writable)
				peerWrite(t, c.peer, "x")
				r.wait(t, Readable)
				// The byte stays unread: a level-triggered poller would keep reporting it.
				time.Sleep(quiet)
				calls := r.calls.Load()
				time.Sleep(quiet)
				if got := r.calls.Load(); got != calls {
					t.Fatalf("%d more events with no new data", got-calls)
				}
				r.take()
				peerWrite(t, c.peer, "y")
				r.wait(t, Readable)
				if n, _ := drainFD(t, c.fd); n != 2 {
					t.Fatalf("read %d bytes, want 2", n)
				}
			})

			t.Run("no events after Remove", func(t *testing.T) {
				t.Parallel()
				p, c, r := newPoller(t), tr.open(t), newRecorder()
				tok := mustAdd(t, p, c.fd, r)
				r.wait(t, Writable)
				if err := p.Remove(tok); err != nil {
					t.Fatal(err)
				}
				calls := r.calls.Load()
				peerWrite(t, c.peer, "ignored")
				c.peer.Close()
				time.Sleep(quiet)
				if got := r.calls.Load(); got != calls {
					t.Fatalf("%d events after Remove", got-calls)
				}
				if err := p.Remove(tok); !errors.Is(err, ErrNotRegistered) {
					t.Fatalf("second Remove: %v, want ErrNotRegistered", err)
				}
				if n := p.Len(); n != 0 {
					t.Fatalf("Len() = %d after Remove, want 0", n)
				}
			})
		})
	}
}

// TestStaleTokenAfterFDReuse replays the race tokens exist for: the kernel reports an event
// for a registration, the owner removes it and closes the fd, a new connection gets the
// same fd number and registers, and only then is the old event dispatched.
func TestStaleTokenAfterFDReuse(t *testing.T) {
	p := newPoller(t)
	oldA, oldB := rawSocketpair(t)
	defer unix.Close(oldB)
	oldR := newRecorder()
	oldTok := mustAdd(t, p, oldA, oldR)
	oldR.wait(t, Writable)
	if err := p.Remove(oldTok); err != nil {
		t.Fatal(err)
	}
	if err := unix.Close(oldA); err != nil {
		t.Fatal(err)
	}

	// The new socket gets the lowest free number, normally the old one; if another
	// goroutine took that, move the socket there.
	a, b := rawSocketpair(t)
	defer unix.Close(b)
	if a != oldA {
		if err := unix.Dup2(a, oldA); err != nil {
			t.Fatal(err)
		}
		unix.Close(a)
		a = oldA
	}
	defer unix.Close(a)

	newR := newRecorder()
	newTok := mustAdd(t, p, a, newR)
	defer p.Remove(newTok)
	if newTok.slot() != oldTok.slot() || newTok == oldTok {
		t.Fatalf("new token %#x, old %#x: want the same slot, another generation", newTok, oldTok)
	}
	newR.wait(t, Writable) // the kernel's own event at Add
	newR.take()
	calls := oldR.calls.Load()

	p.dispatch(makeBatch([]Token{oldTok}, Readable|Hangup))
	if got := newR.take(); got != 0 {
		t.Fatalf("event for the removed token reached the new registration: %v", got)
	}
	if got := oldR.calls.Load(); got != calls {
		t.Fatal("event for the removed token reached its old handler")
	}

	// The same event with the live token is delivered: the check is the generation.
	p.dispatch(makeBatch([]Token{newTok}, Readable|Hangup))
	if got := newR.take(); got&Hangup == 0 {
		t.Fatalf("event for the live token: got %v, want Hangup", got)
	}
}

// TestConcurrentAddRemove adds and removes 500 socketpairs from many goroutines while
// traffic flows on all of them, and checks that each registration sees its data and that
// nothing reaches a handler after its Remove returned.
func TestConcurrentAddRemove(t *testing.T) {
	const (
		pairs   = 500
		workers = 10
		rounds  = 4
	)
	p := newPoller(t)
	fds := make([][2]int, pairs)
	for i := range fds {
		fds[i][0], fds[i][1] = rawSocketpair(t)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd[0])
			unix.Close(fd[1])
		}
	}()

	stop := make(chan struct{})
	var traffic sync.WaitGroup
	traffic.Add(1)
	go func() { // background writes to random pairs, registered or not
		defer traffic.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			unix.Write(fds[rng.IntN(pairs)][1], []byte{'t'})
			runtime.Gosched()
		}
	}()

	type removed struct {
		r     *recorder
		calls int64
	}
	var (
		mu   sync.Mutex
		gone []removed
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				for i := w; i < pairs; i += workers {
					r := newRecorder()
					tok, err := p.Add(fds[i][0], r)
					if err != nil {
						t.Errorf("Add: %v", err)
						return
					}
					unix.Write(fds[i][1], []byte{byte(round)})
					timer := time.NewTimer(waitTimeout)
					for Event(r.bits.Load())&Readable == 0 {
						select {
						case <-r.sig:
						case <-timer.C:
							t.Errorf("pair %d round %d: no Readable", i, round)
							return
						}
					}
					timer.Stop()
					buf := make([]byte, 256)
					for {
						if _, err := unix.Read(fds[i][0], buf); err != nil {
							break
						}
					}
					if err := p.Remove(tok); err != nil {
						t.Errorf("Remove: %v", err)
						return
					}
					mu.Lock()
					gone = append(gone, removed{r, r.calls.Load()})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(quiet) // more traffic on removed fds
	close(stop)
	traffic.Wait()

	for _, g := range gone {
		if got := g.r.calls.Load(); got != g.calls {
			t.Fatalf("%d events after Remove returned", got-g.calls)
		}
	}
	if len(gone) != pairs*rounds && !t.Failed() {
		t.Fatalf("%d registrations completed, want %d", len(gone), pairs*rounds)
	}
	if n := p.Len(); n != 0 {
		t.Fatalf("Len() = %d, want 0", n)
	}
}

// TestCloseWhileAdding closes a Poller while other goroutines add and remove: each call
// must either succeed or report ErrClosed, never touch a closed kernel fd.
func TestCloseWhileAdding(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	fds := make([][2]int, n)
	for i := range fds {
		fds[i][0], fds[i][1] = rawSocketpair(t)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd[0])
			unix.Close(fd[1])
		}
	}()
	var wg sync.WaitGroup
	for i := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				tok, err := p.Add(fds[i][0], newRecorder())
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Add: %v", err)
					return
				}
				if err := p.Remove(tok); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Remove: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	a, b := rawSocketpair(t)
	defer unix.Close(a)
	defer unix.Close(b)
	tok := mustAdd(t, p, a, newRecorder())

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, ok := waitGoroutines(before, waitTimeout); !ok {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if _, err := p.Add(a, newRecorder()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
	if err := p.Remove(tok); !errors.Is(err, ErrClosed) {
		t.Fatalf("Remove after Close: %v, want ErrClosed", err)
	}
	// The registered fd is still open: Close leaves fds to their owners.
	if _, err := unix.Write(b, []byte{1}); err != nil {
		t.Fatalf("fd closed by Close: %v", err)
	}

	var zero Poller
	if _, err := zero.Add(a, newRecorder()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add on a zero Poller: %v, want ErrClosed", err)
	}
}

func TestAddErrors(t *testing.T) {
	p := newPoller(t)
	if _, err := p.Add(0, nil); err == nil {
		t.Error("Add with a nil Handler succeeded")
	}
	if _, err := p.Add(-1, newRecorder()); err == nil {
		t.Error("Add(-1) succeeded")
	}
	a, b := rawSocketpair(t)
	unix.Close(b)
	unix.Close(a)
	if _, err := p.Add(a, newRecorder()); err == nil {
		t.Error("Add of a closed fd succeeded")
	}
	if n := p.Len(); n != 0 {
		t.Fatalf("Len() = %d after failed Adds, want 0", n)
	}
	if err := p.Remove(makeToken(7, 1)); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Remove of an unknown token: %v, want ErrNotRegistered", err)
	}
	if err := p.Remove(0); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Remove(0): %v, want ErrNotRegistered", err)
	}
}

func TestEventString(t *testing.T) {
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{0, "0"},
		{Readable, "Readable"},
		{Readable | Writable | Hangup, "Readable|Writable|Hangup"},
		{Writable | 1<<7, "Writable|0x80"},
	} {
		if got := tc.ev.String(); got != tc.want {
			t.Errorf("Event(%#x).String() = %q, want %q", uint32(tc.ev), got, tc.want)
		}
	}
}

// fakeRegister fills the slab without telling the kernel, for tests and benchmarks that
// exercise only the table and dispatch.
func fakeRegister(p *Poller, n int, h Handler) []Token {
	p.mu.Lock()
	defer p.mu.Unlock()
	tokens := make([]Token, n)
	for i := range tokens {
		slot, err := p.allocLocked(int32(i), h)
		if err != nil {
			panic(err)
		}
		tokens[i] = makeToken(slot, p.entries[slot].gen)
	}
	return tokens
}

// TestRegistrationMemory measures the user-space heap a registration costs.
func TestRegistrationMemory(t *testing.T) {
	const n = 100_000
	if size := unsafe.Sizeof(entry{}); size > 24 {
		t.Fatalf("slab entry is %d bytes, want at most 24", size)
	}
	p := newPoller(t)
	h := newRecorder()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tokens := fakeRegister(p, n, h)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perReg := float64(after.HeapAlloc-before.HeapAlloc-uint64(len(tokens))*8) / n
	t.Logf("slab entry %d bytes; measured %.1f bytes of heap per registration (slab growth slack included)",
		unsafe.Sizeof(entry{}), perReg)
	if perReg > 2*float64(unsafe.Sizeof(entry{}))+8 {
		t.Fatalf("%.1f bytes per registration", perReg)
	}
	runtime.KeepAlive(tokens)
}

func TestDispatchAllocs(t *testing.T) {
	p := newPoller(t)
	batch := makeBatch(fakeRegister(p, 256, newRecorder()), Readable|Writable)
	if allocs := testing.AllocsPerRun(100, func() { p.dispatch(batch) }); allocs != 0 {
		t.Fatalf("%v allocations per dispatched batch, want 0", allocs)
	}
}

func BenchmarkAddRemove(b *testing.B) {
	for _, registered := range []int{0, 1000} {
		b.Run(fmt.Sprintf("registered%d", registered), func(b *testing.B) {
			p := newPoller(b)
			var others [][2]int
			for range registered {
				a, c := rawSocketpair(b)
				others = append(others, [2]int{a, c})
				mustAdd(b, p, a, newRecorder())
			}
			defer func() {
				for _, fd := range others {
					unix.Close(fd[0])
					unix.Close(fd[1])
				}
			}()
			a, c := rawSocketpair(b)
			defer unix.Close(a)
			defer unix.Close(c)
			h := newRecorder()
			b.ReportAllocs()
			for b.Loop() {
				tok, err := p.Add(a, h)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Remove(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countHandler is the cheapest possible Handler, so the benchmark measures dispatch.
type countHandler struct{ n int }

func (h *countHandler) Ready(Event) { h.n++ }

// BenchmarkDispatch measures the per-event path from a kernel batch to Ready: the slot
// lookup, the generation check and the call. One op is one event.
func BenchmarkDispatch(b *testing.B) {
	for _, size := range []int{1, 64, 256, 4096} {
		b.Run(fmt.Sprintf("batch%d", size), func(b *testing.B) {
			p := newPoller(b)
			h := &countHandler{}
			tokens := fakeRegister(p, 100_000, h)
			// Spread the batch over the table, as real connections would be.
			rng := rand.New(rand.NewPCG(3, 4))
			picked := make([]Token, size)
			for i := range picked {
				picked[i] = tokens[rng.IntN(len(tokens))]
			}
			batch := makeBatch(picked, Readable)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += size {
				p.dispatch(batch)
			}
		})
	}
}

// BenchmarkKernelRoundTrip measures a whole readiness round trip through the kernel: the
// peer writes a byte, the event loop wakes and calls Ready, the owner reads the byte.
func BenchmarkKernelRoundTrip(b *testing.B) {
	p := newPoller(b)
	a, c := rawSocketpair(b)
	defer unix.Close(a)
	defer unix.Close(c)
	r := newRecorder()
	tok := mustAdd(b, p, a, r)
	defer p.Remove(tok)
	r.wait(b, Writable)
	buf := make([]byte, 16)
	timer := time.NewTimer(waitTimeout) // one timer, reset per op, keeps the loop allocation-free
	defer timer.Stop()
	b.ReportAllocs()
	for b.Loop() {
		r.take()
		timer.Reset(waitTimeout)
		unix.Write(c, buf[:1])
		for Event(r.bits.Load())&Readable == 0 {
			select {
			case <-r.sig:
			case <-timer.C:
				b.Fatalf("no Readable within %v", waitTimeout)
			}
		}
		unix.Read(a, buf)
	}
}

// Replace hands a registration's events to a new Handler without re-registering: the old
// one sees nothing more, the new one sees the next event; a removed or stale Token is
// refused.
func TestReplace(t *testing.T) {
	p := newPoller(t)
	a, b := rawSocketpair(t)
	defer unix.Close(a)
	defer unix.Close(b)
	first := newRecorder()
	tok := mustAdd(t, p, a, first)
	first.wait(t, Writable)
	second := newRecorder()
	if err := p.Replace(tok, second); err != nil {
		t.Fatal(err)
	}
	calls := first.calls.Load()
	if _, err := unix.Write(b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	second.wait(t, Readable)
	if got := first.calls.Load(); got != calls {
		t.Fatal("the replaced handler was called after Replace returned")
	}
	if err := p.Replace(tok, nil); err == nil {
		t.Fatal("Replace took a nil Handler")
	}
	if err := p.Remove(tok); err != nil {
		t.Fatal(err)
	}
	if err := p.Replace(tok, first); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Replace of a removed token: %v, want ErrNotRegistered", err)
	}
}
