package poller

import "golang.org/x/sys/unix"

// kernelBatch is what the event loop reads from the kernel and hands to dispatch.
type kernelBatch = []unix.EpollEvent

// makeBatch builds the events the kernel would report for tokens, as if each had ev ready.
func makeBatch(tokens []Token, ev Event) kernelBatch {
	var bits uint32
	if ev&Readable != 0 {
		bits |= unix.EPOLLIN
	}
	if ev&Writable != 0 {
		bits |= unix.EPOLLOUT
	}
	if ev&Hangup != 0 {
		bits |= unix.EPOLLRDHUP
	}
	batch := make(kernelBatch, len(tokens))
	for i, t := range tokens {
		batch[i] = tokenEvent(bits, t)
	}
	return batch
}
