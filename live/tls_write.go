package live

import (
	"github.com/livepoll/livepoll/pool"
)

// The write side of a TLS session (ServeTLS). A published frame is encoded once and
// shared by every subscriber, but each TLS session has its own keys and sequence numbers,
// so each seals its own copy: at the moment the frame is handed to it, under wmu, into a
// pooled buffer. From then on the sealed copy is an ordinary queued frame — written at
// once if the socket takes it, else queued, coalesced with writev (or a fan-out batch's
// io_uring) and counted against QueueSize and QueueBytes like a plain frame — and its
// buffer goes back to the pool as soon as it is written. So the plain write path needs no
// TLS branch past this point, and an idle TLS session holds no buffer.
//
// Sealing at hand-over rather than at write time keeps records in queue order: a record's
// sequence number is fixed when it is sealed, so the queue is never reordered or thinned
// (dropQueuedLocked leaves a TLS queue whole).

// sealedRoom is what Seal may add beyond SealedLen: a KeyUpdate owed to the peer.
func sealedRoom(s *Session) int { return 2*s.tls.Overhead() + 5 }

// controlRoom holds SealPending's or SealClose's records: a KeyUpdate and an alert.
const controlRoom = 64

// sealLocked returns a new frame (one reference, the caller's) holding f sealed for this
// session, or nil once the session's write side is closed (close_notify or a fatal alert
// went out: nothing may follow).
func (s *Session) sealLocked(f *pool.Shared) *pool.Shared {
	sf := pool.NewShared(s.tls.SealedLen(len(f.B)) + sealedRoom(s))
	b, err := s.tls.Seal(sf.B[:0], f.B)
	if err != nil {
		sf.Release()
		return nil
	}
	sf.B = b
	return sf
}

// pushSealedLocked queues a sealed copy of f.
func (s *Session) pushSealedLocked(f *pool.Shared) {
	if sf := s.sealLocked(f); sf != nil {
		s.queueSealedLocked(sf)
	}
}

// queueSealedLocked queues sf, taking over the caller's reference.
func (s *Session) queueSealedLocked(sf *pool.Shared) {
	s.q = append(s.q, sf)
	s.qbytes += frameCost(sf)
}

// writeSealedLocked is enqueueLocked's direct write for a TLS session with an empty queue.
func (s *Session) writeSealedLocked(f *pool.Shared) error {
	sf := s.sealLocked(f)
	if sf == nil {
		return nil
	}
	return s.writeOrQueueLocked(sf)
}

// writeOrQueueLocked writes sealed bytes now if nothing waits ahead of them and queues
// what the socket does not take; it takes over the caller's reference to sf.
func (s *Session) writeOrQueueLocked(sf *pool.Shared) error {
	if len(s.q) > 0 {
		s.queueSealedLocked(sf)
		return nil
	}
	n, err := writeAll(int(s.fd), sf.B)
	if n > 0 {
		s.srv.stats.bytesOut.Add(uint64(n))
	}
	if n == len(sf.B) || err != nil {
		sf.Release()
		return err
	}
	s.queueSealedLocked(sf)
	s.qoff = int32(n)
	return nil
}

// sendTLSPending writes the records the read side made the write side owe: the answer to
// a KeyUpdate, our close_notify after the client's, or the alert after bad input.
func (s *Session) sendTLSPending() {
	s.wmu.Lock()
	if !s.fdOpen {
		s.wmu.Unlock()
		return
	}
	sf := pool.NewShared(controlRoom)
	sf.B = s.tls.SealPending(sf.B[:0])
	var err error
	if len(sf.B) == 0 {
		sf.Release()
	} else {
		err = s.writeOrQueueLocked(sf)
	}
	s.wmu.Unlock()
	if err != nil {
		s.writeFailed(err)
	}
}

// closeNotifyOutLocked seals our close_notify behind the close frame (once) and reports
// whether it is written, so the write side may be shut. A write error reports true: the
// connection is going anyway.
func (s *Session) closeNotifyOutLocked() bool {
	sf := pool.NewShared(controlRoom)
	sf.B = s.tls.SealClose(sf.B[:0])
	if len(sf.B) == 0 { // sealed before (or a fatal alert went out): nothing more to send
		sf.Release()
		return true
	}
	if err := s.writeOrQueueLocked(sf); err != nil {
		return true
	}
	return len(s.q) == 0
}
