//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package poller_test

import (
	"fmt"
	"time"

	"github.com/livepoll/livepoll/poller"
	"golang.org/x/sys/unix"
)

// notify is a Handler that passes events on without blocking the poller's goroutine.
type notify chan poller.Event

func (n notify) Ready(ev poller.Event) {
	select {
	case n <- ev:
	default: // a wakeup is already pending; the owner reads until EAGAIN anyway
	}
}

func Example() {
	p, err := poller.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	owned, remote := fds[0], fds[1]
	defer unix.Close(owned)
	defer unix.Close(remote)
	unix.SetNonblock(owned, true)

	events := make(notify, 1)
	tok, err := p.Add(owned, events)
	if err != nil {
		fmt.Println(err)
		return
	}
	unix.Write(remote, []byte("hello"))

	timeout := time.After(5 * time.Second)
	for {
		select {
		case <-events:
			// Edge-triggered: read until EAGAIN, or no event comes for what is left. Read
			// on every event, whatever its bits: notify drops an event while one is pending
			// (the Writable reported at Add, say), so that one may stand for both.
			buf := make([]byte, 64)
			got := false
			for {
				n, err := unix.Read(owned, buf)
				if err != nil || n == 0 {
					break
				}
				fmt.Printf("read %q\n", buf[:n])
				got = true
			}
			if !got {
				continue
			}
			// Remove before closing the fd, so its number cannot be reused while registered.
			fmt.Println(p.Remove(tok))
			return
		case <-timeout:
			fmt.Println("timed out")
			return
		}
	}
	// Output:
	// read "hello"
	// <nil>
}
