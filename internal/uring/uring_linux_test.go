//go:build linux

package uring

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// pair returns a connected loopback TCP pair: the sending end as a non-blocking raw
// descriptor, the receiving end as a net.Conn.
func pair(t testing.TB) (int, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.(*net.TCPConn).File() // a duplicate, blocking unless set otherwise
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd); c.Close() })
	return fd, c
}

func newRing(t *testing.T, size int) *Ring {
	t.Helper()
	r, err := New(size)
	if err != nil {
		// Said in the test report (.ci/test lists every skip with its reason).
		t.Skipf("io_uring unavailable here: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func TestSendsReachEverySocketInOrder(t *testing.T) {
	r := newRing(t, 16)
	const n = 16
	fds := make([]int, n)
	conns := make([]net.Conn, n)
	for i := range n {
		fds[i], conns[i] = pair(t)
	}
	res := make([]int32, n)
	for round := range 3 { // the ring is reused across Submits
		for i, fd := range fds {
			a := []byte{byte('a' + round), byte(i)}
			if got := r.Prepare(fd, [][]byte{a, nil, []byte("xyz")}); got != i {
				t.Fatalf("Prepare returned index %d, want %d", got, i)
			}
		}
		if r.Prepare(fds[0], [][]byte{[]byte("x")}) != -1 {
			t.Fatal("Prepare on a full ring did not return -1")
		}
		if err := r.Submit(res); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if res[i] != 5 {
				t.Fatalf("round %d send %d: result %d, want 5", round, i, res[i])
			}
			want := []byte{byte('a' + round), byte(i), 'x', 'y', 'z'}
			if got := readN(t, conns[i], 5); !bytes.Equal(got, want) {
				t.Fatalf("round %d socket %d got %q, want %q", round, i, got, want)
			}
		}
	}
}

func TestAtMostMaxBufsGoOut(t *testing.T) {
	r := newRing(t, 1)
	fd, c := pair(t)
	var bufs [][]byte
	for i := range MaxBufs + 3 {
		bufs = append(bufs, []byte{byte(i)})
	}
	r.Prepare(fd, bufs)
	res := make([]int32, 1)
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
	if res[0] != MaxBufs {
		t.Fatalf("sent %d bytes, want %d (MaxBufs buffers of one byte)", res[0], MaxBufs)
	}
	got := readN(t, c, MaxBufs)
	for i, b := range got {
		if int(b) != i {
			t.Fatalf("byte %d is %d", i, b)
		}
	}
}

// A socket whose buffer is full answers EAGAIN at once (MSG_DONTWAIT): Submit never waits
// for a client that does not read. Errors come back per send.
func TestFullSocketAndBadDescriptorAnswerAtOnce(t *testing.T) {
	r := newRing(t, 4)
	fd, _ := pair(t)
	big := make([]byte, 1<<20)
	res := make([]int32, 4)
	sawAgain := false
	deadline := time.Now().Add(10 * time.Second)
	for !sawAgain {
		if time.Now().After(deadline) {
			t.Fatal("the socket never filled up")
		}
		r.Prepare(fd, [][]byte{big})
		done := make(chan error, 1)
		go func() { done <- r.Submit(res) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			// Leave the ring mapped: the goroutine is still inside Submit.
			r.ring, r.cqRing, r.sqesMem, r.fd = nil, nil, nil, -1
			t.Fatal("Submit waited on a full socket")
		}
		sawAgain = res[0] == -int32(unix.EAGAIN)
		if !sawAgain && res[0] <= 0 {
			t.Fatalf("send result %d", res[0])
		}
	}
	r.Prepare(1<<20, [][]byte{[]byte("x")}) // not a descriptor
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	r.Prepare(int(devNull.Fd()), [][]byte{[]byte("x")}) // not a socket
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
	if res[0] != -int32(unix.EBADF) {
		t.Fatalf("send to a bad descriptor: %d, want -EBADF", res[0])
	}
	if res[1] != -int32(unix.ENOTSOCK) {
		t.Fatalf("send to a file: %d, want -ENOTSOCK", res[1])
	}
}

func TestNewRejectsBadSizes(t *testing.T) {
	for _, n := range []int{0, -1, 4097} {
		if r, err := New(n); err == nil {
			r.Close()
			t.Fatalf("New(%d) succeeded", n)
		}
	}
}

func BenchmarkSend256(b *testing.B) {
	r, err := New(256)
	if err != nil {
		b.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.Close()
	benchSends(b, func(fds []int, msg []byte) {
		for _, fd := range fds {
			r.Prepare(fd, [][]byte{msg})
		}
		res := make([]int32, len(fds))
		if err := r.Submit(res); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkWrite256(b *testing.B) {
	benchSends(b, func(fds []int, msg []byte) {
		for _, fd := range fds {
			unix.Write(fd, msg)
		}
	})
}

// benchSends measures sending 100 bytes to each of 256 loopback sockets per op; the
// receivers are drained outside the timer.
func benchSends(b *testing.B, send func(fds []int, msg []byte)) {
	fds := make([]int, 256)
	conns := make([]net.Conn, 256)
	for i := range fds {
		fds[i], conns[i] = pair(b)
	}
	msg := make([]byte, 100)
	sink := make([]byte, 64<<10)
	drain := func() {
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(200 * time.Microsecond))
			for {
				if _, err := c.Read(sink); err != nil {
					break
				}
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		send(fds, msg)
		if i%32 == 31 {
			b.StopTimer()
			drain()
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(fds)), "ns/send")
}

// This kernel completes a send to a full socket at once: the property Submit relies on.
func TestCheckNowait(t *testing.T) {
	r := newRing(t, 4)
	if err := r.CheckNowait(); err != nil {
		t.Fatalf("CheckNowait: %v", err)
	}
	// The ring is still usable after the check.
	fd, c := pair(t)
	r.Prepare(fd, [][]byte{[]byte("ok")})
	res := make([]int32, 1)
	if err := r.Submit(res); err != nil || res[0] != 2 {
		t.Fatalf("send after the check: %d, %v", res[0], err)
	}
	if got := readN(t, c, 2); string(got) != "ok" {
		t.Fatalf("got %q", got)
	}
}

// A failed ring reports every prepared send as NotSent and takes no more.
func TestSubmitOnClosedRingReportsNotSent(t *testing.T) {
	r := newRing(t, 4)
	fd, _ := pair(t)
	r.Prepare(fd, [][]byte{[]byte("x")})
	r.Prepare(fd, [][]byte{[]byte("y")})
	unix.Close(r.fd) // the ring's descriptor is gone: io_uring_enter fails with EBADF
	res := make([]int32, 2)
	if err := r.Submit(res); err == nil {
		t.Fatal("Submit on a closed ring did not fail")
	}
	if res[0] != NotSent || res[1] != NotSent {
		t.Fatalf("results %v, want NotSent for both", res)
	}
	if r.Prepare(fd, [][]byte{[]byte("z")}) != -1 {
		t.Fatal("a failed ring took another send")
	}
	r.fd = -1 // already closed
}

// Receives from several sockets in one Submit: each gets its own socket's bytes (at most
// its buffer's length), an empty socket answers -EAGAIN at once, a closed peer 0 and a bad
// descriptor -EBADF.
func TestRecvFromManySockets(t *testing.T) {
	r := newRing(t, 8)
	if err := r.CheckRecvNowait(); err != nil {
		t.Fatalf("CheckRecvNowait: %v", err)
	}
	const n = 4
	fds := make([]int, n)
	for i := range fds {
		var c net.Conn
		fds[i], c = pair(t)
		switch i {
		case 0, 1:
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(fmt.Sprintf("message %d to socket %d", i, i))); err != nil {
				t.Fatal(err)
			}
		case 3:
			c.Close()
		}
	}
	// Wait until the data and the FIN have arrived, so the receives find them.
	for _, i := range []int{0, 1, 3} {
		pfd := []unix.PollFd{{Fd: int32(fds[i]), Events: unix.POLLIN}}
		if k, err := unix.Poll(pfd, 5000); k != 1 || err != nil {
			t.Fatalf("socket %d not readable: %d, %v", i, k, err)
		}
	}
	bufs := make([][]byte, n+1)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	bufs[1] = bufs[1][:7] // shorter than the message: the rest stays in the socket
	for i, fd := range fds {
		if got := r.PrepareRecv(fd, bufs[i]); got != i {
			t.Fatalf("PrepareRecv %d = %d", i, got)
		}
	}
	if r.PrepareRecv(fds[0], nil) != -1 {
		t.Fatal("PrepareRecv took an empty buffer")
	}
	r.PrepareRecv(1<<20, bufs[n]) // no such descriptor
	res := make([]int32, n+1)
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
	if got := string(bufs[0][:max(res[0], 0)]); got != "message 0 to socket 0" {
		t.Errorf("socket 0: %d, %q", res[0], got)
	}
	if got := string(bufs[1][:max(res[1], 0)]); got != "message" {
		t.Errorf("socket 1: %d, %q, want the first 7 bytes", res[1], got)
	}
	if res[2] != -int32(unix.EAGAIN) {
		t.Errorf("empty socket: %d, want -EAGAIN", res[2])
	}
	if res[3] != 0 {
		t.Errorf("closed peer: %d, want 0", res[3])
	}
	if res[4] != -int32(unix.EBADF) {
		t.Errorf("bad descriptor: %d, want -EBADF", res[4])
	}
	// What the short receive left is still there.
	r.PrepareRecv(fds[1], bufs[1][:64])
	if err := r.Submit(res); err != nil || string(bufs[1][:max(res[0], 0)]) != " 1 to socket 1" {
		t.Fatalf("the rest of socket 1: %d, %q, %v", res[0], bufs[1][:max(res[0], 0)], err)
	}
}
