package pool

import "sync/atomic"

// scheduled marks a Signal whose owner is submitted to, or running on, a Pool.
const scheduled = 1 << 31

// Signal orders the work of one owner on a Pool: the owner runs at most once at a time,
// and work raised while it runs is seen by that same run before it lets go. The low 31 bits
// are owner-defined kinds of work. The zero value is idle.
//
// The owner's Task.Run should loop:
//
//	for {
//		bits := sig.Take()
//		... handle bits ...
//		if sig.Done() {
//			return
//		}
//	}
//
// All methods are safe for concurrent use.
type Signal struct{ v atomic.Uint32 }

// Raise records bits (which must not use bit 31). It reports true when the owner was idle
// and the caller must now submit it to the Pool; false when it is already scheduled and will
// see the bits.
func (s *Signal) Raise(bits uint32) bool {
	for {
		old := s.v.Load()
		next := old | bits | scheduled
		if old == next {
			return false
		}
		if s.v.CompareAndSwap(old, next) {
			return old&scheduled == 0
		}
	}
}

// Take returns and clears the pending bits; the owner stays scheduled.
func (s *Signal) Take() uint32 {
	return s.v.Swap(scheduled) &^ scheduled
}

// Done ends a run: it reports true and marks the owner idle when nothing was raised since
// the last Take; otherwise it reports false and the owner must Take again.
func (s *Signal) Done() bool {
	return s.v.CompareAndSwap(scheduled, 0)
}
