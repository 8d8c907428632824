//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package poller

import "golang.org/x/sys/unix"

// kernelBatch is what the event loop reads from the kernel and hands to dispatch.
type kernelBatch = []unix.Kevent_t

// makeBatch builds the events the kernel would report for tokens, as if each had ev ready:
// one event per filter, adjacent, as kqueue reports them.
func makeBatch(tokens []Token, ev Event) kernelBatch {
	var filters []int
	if ev&(Readable|Hangup) != 0 {
		filters = append(filters, unix.EVFILT_READ)
	}
	if ev&Writable != 0 {
		filters = append(filters, unix.EVFILT_WRITE)
	}
	flags := 0
	if ev&Hangup != 0 {
		flags = unix.EV_EOF
	}
	batch := newKevents(len(tokens) * len(filters))
	for i, t := range tokens {
		for j, f := range filters {
			setKevent(&batch[i*len(filters)+j], 0, f, flags, 0, cookie(t))
		}
	}
	return batch
}
