//go:build linux

package live

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A turn that is used up (the client sent more than a turn takes) or that read heavyTurn
// bytes marks the session heavy; a light turn clears the mark. Driven turn by turn on a
// socketpair, without a poller.
func TestTurnMarksSessionHeavy(t *testing.T) {
	var calls sync.Map
	srv := New(Options{OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
		calls.Store(string(data[:9]), true)
	}})
	defer srv.Close()
	if err := srv.start(); err != nil { // the worker pool OnMessage runs on
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	defer unix.Close(fds[0])
	unix.SetNonblock(fds[0], true)
	unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
	s := &Session{id: "heavy", srv: srv, fd: int32(fds[0]), fdOpen: true}

	write := func(p []byte) {
		t.Helper()
		for len(p) > 0 {
			n, err := unix.Write(fds[1], p)
			if err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
	}
	// 100 frames of ~1 KiB: more than the turnFrames one turn parses.
	var wire []byte
	for i := range 100 {
		wire = append(wire, echoFrame(i, 1000)...)
	}
	write(wire)
	if more := s.readReady(false); !more {
		t.Fatal("a turn with 100 frames waiting did not report more input")
	}
	if s.flags.Load()&flagHeavy == 0 {
		t.Fatal("a used-up turn did not mark the session heavy")
	}
	for range 10 {
		if !s.readReady(true) {
			break
		}
	}
	write(echoFrame(100, 10))
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.readReady(false)
		if _, ok := calls.Load("\"00000100"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the small message was not read")
		}
	}
	if s.flags.Load()&flagHeavy != 0 {
		t.Fatal("a light turn left the session marked heavy")
	}
}
