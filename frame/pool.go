package frame

import (
	"sync"

	"github.com/livepoll/livepoll/pool"
)

// minBuf is the smallest buffer taken for an unfinished frame or message: most partial
// frames are small, and starting at 512 B saves regrowing for them.
const minBuf = 512

// getBuf returns an empty buffer with room for at least n bytes, from pool's size classes
// (messages over 16 MiB get a buffer of their own, left to the garbage collector).
func getBuf(n int) *[]byte {
	b := pool.Get(max(n, minBuf))
	*b = (*b)[:0]
	return b
}

// putBuf gives b back to its pool; b must not be used afterwards.
func putBuf(b *[]byte) { pool.Put(b) }

// statePool holds the state of Readers that are in the middle of a frame or
// message; an idle Reader gives its state back.
var statePool = sync.Pool{New: func() any { return new(state) }}
