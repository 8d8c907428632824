package frame

import (
	"math/bits"
	"sync"
)

// Buffers for unfinished frames and messages come in power-of-two classes
// from minBufBits to maxBufBits. Bigger ones are rare (a message over 16 MiB)
// and are left to the garbage collector rather than kept in a pool.
const (
	minBufBits = 9  // 512 B
	maxBufBits = 24 // 16 MiB
)

// bufPools hold *[]byte so that putting a buffer back does not allocate.
var bufPools [maxBufBits - minBufBits + 1]sync.Pool

// getBuf returns an empty buffer with room for at least n bytes.
func getBuf(n int) *[]byte {
	class := bufClass(n)
	if class < 0 {
		b := make([]byte, 0, n)
		return &b
	}
	if b, ok := bufPools[class].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 1<<(class+minBufBits))
	return &b
}

// putBuf gives b back to its pool; b must not be used afterwards.
func putBuf(b *[]byte) {
	c := cap(*b)
	if c < 1<<minBufBits || c&(c-1) != 0 {
		return
	}
	class := bits.TrailingZeros(uint(c)) - minBufBits
	if class >= len(bufPools) {
		return
	}
	*b = (*b)[:0]
	bufPools[class].Put(b)
}

// bufClass is the index of the smallest class that holds n bytes, or -1 if
// n is over the biggest class.
func bufClass(n int) int {
	if n <= 1<<minBufBits {
		return 0
	}
	class := bits.Len(uint(n-1)) - minBufBits
	if class >= len(bufPools) {
		return -1
	}
	return class
}

// statePool holds the state of Readers that are in the middle of a frame or
// message; an idle Reader gives its state back.
var statePool = sync.Pool{New: func() any { return new(state) }}
