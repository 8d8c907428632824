package pool

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Size classes are powers of two from 1<<minClass to 1<<maxClass bytes. Requests above
// the largest class are allocated and dropped to the garbage collector.
const (
	minClass = 6  // 64 B
	maxClass = 24 // 16 MiB
)

var classes [maxClass - minClass + 1]sync.Pool

func classOf(n int) int {
	if n <= 1<<minClass {
		return 0
	}
	return bits.Len(uint(n-1)) - minClass
}

// Get lends a slice of length n with capacity rounded up to its size class. Its contents
// are undefined. Give it back with Put once nothing refers to it any more.
func Get(n int) *[]byte {
	c := classOf(n)
	if c >= len(classes) {
		b := make([]byte, n)
		return &b
	}
	if v := classes[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+minClass))
	return &b
}

// Put returns a slice lent by Get. Slices whose capacity is not a size class are dropped.
func Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minClass || c > 1<<maxClass || c&(c-1) != 0 {
		return
	}
	*b = (*b)[:0]
	classes[classOf(c)].Put(b)
}

// Shared is a reference-counted pooled buffer: one encoded frame queued on many
// connections. B is the valid data; it stays valid until the last Release.
type Shared struct {
	B    []byte
	refs atomic.Int32
	buf  *[]byte
}

var sharedPool = sync.Pool{New: func() any { return new(Shared) }}

// NewShared returns a Shared whose B has length n (undefined contents), with a reference
// count of one held by the caller.
func NewShared(n int) *Shared {
	f := sharedPool.Get().(*Shared)
	f.buf = Get(n)
	f.B = *f.buf
	f.refs.Store(1)
	return f
}

// Size is the memory f holds: the capacity of its pooled buffer (B's length rounded up to
// a size class).
func (f *Shared) Size() int { return cap(*f.buf) }

// Retain adds a reference. The caller must already hold one.
func (f *Shared) Retain() { f.refs.Add(1) }

// Release drops a reference; the last one returns the buffer to its pool, after which
// neither f nor f.B may be used.
func (f *Shared) Release() {
	switch n := f.refs.Add(-1); {
	case n == 0:
		Put(f.buf)
		f.buf, f.B = nil, nil
		sharedPool.Put(f)
	case n < 0:
		panic("pool: Shared released more times than retained")
	}
}
