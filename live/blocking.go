package live

import (
	"errors"
	"net"
	"sync"
)

// The portable path. A connection without a pollable descriptor — a *tls.Conn, or any
// connection where the platform has no epoll or kqueue — gets two goroutines: a reader
// blocked in conn.Read and a writer blocked in conn.Write. They only move bytes; parsing,
// OnMessage, OnClose and the close path are the event loop's own, run by the session's
// task exactly as for a polled socket. The cost is what mizu pays per connection (two
// goroutines and their stacks) plus a 4 KiB read buffer; docs/architecture.md says when
// it is used.

const blockingReadBuf = 4 << 10

// blockingIO is the state of a session served by goroutines.
type blockingIO struct {
	mu      sync.Mutex
	inbox   []byte // bytes the reader handed over, not yet consumed by the task
	readErr error  // the error that ended the reader, reported after inbox
	taken   chan struct{}
	wake    chan struct{} // the writer has frames to write (capacity 1)
	done    chan struct{} // closed by finish
	once    sync.Once
}

func newBlockingIO() *blockingIO {
	return &blockingIO{
		taken: make(chan struct{}, 1),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
}

// startBlocking starts the reader and writer of a session on the portable path.
func (s *Session) startBlocking() {
	go s.blockingReader()
	go s.blockingWriter()
}

// blockingReader reads into its own buffer and hands each chunk to the session's task,
// waiting until the task has consumed it (that wait is the inbound backpressure).
func (s *Session) blockingReader() {
	b := s.blk
	buf := make([]byte, blockingReadBuf)
	for {
		n, err := s.conn.Read(buf)
		if n == 0 && err == nil {
			continue
		}
		b.mu.Lock()
		b.inbox, b.readErr = buf[:n], err
		b.mu.Unlock()
		s.raise(workRead)
		select {
		case <-b.taken:
		case <-b.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// readInbox is readReady for the portable path: it consumes what the reader handed over.
// It reports whether parsing stopped before the end of it (the rest is in pending, and
// the reader may already reuse its buffer).
func (s *Session) readInbox() (stopped bool) {
	b := s.blk
	b.mu.Lock()
	p, err := b.inbox, b.readErr
	had := p != nil || err != nil
	b.inbox, b.readErr = nil, nil
	b.mu.Unlock()
	if !had {
		return false
	}
	if len(p) > 0 {
		stopped = s.received(p)
	}
	if err != nil {
		s.inputEnded(err)
	}
	b.taken <- struct{}{} // the reader may reuse its buffer
	return stopped
}

// wakeWriter tells the writer that the queue has frames.
func (b *blockingIO) wakeWriter() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// blockingWriter takes the whole queue at once and writes it out; after the close frame
// has gone it shuts the write side down when the connection can do that.
func (s *Session) blockingWriter() {
	b := s.blk
	for {
		select {
		case <-b.wake:
		case <-b.done:
			return
		}
		// The batch stays counted in qbytes until it is written, so the queue's bounds
		// hold for what the writer has taken too.
		s.wmu.Lock()
		batch, off := s.q, s.qoff
		s.q, s.qoff = nil, 0
		s.wmu.Unlock()
		var err error
		var written int32
		for i, f := range batch {
			if err == nil {
				p := f.B
				if i == 0 {
					p = p[off:]
				}
				var n int
				n, err = s.conn.Write(p)
				s.srv.stats.bytesOut.Add(uint64(n))
			}
			written += frameCost(f)
			f.Release()
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.writeFailed(err)
			}
			return
		}
		s.wmu.Lock()
		s.qbytes = max(0, s.qbytes-written) // finish may have zeroed it meanwhile
		s.resumeIfDrainedLocked()
		if s.shutWr && len(s.q) == 0 {
			s.shutWr = false
			if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		}
		s.wmu.Unlock()
	}
}

// stopBlocking ends the reader's wait and the writer (finish closes the connection, which
// ends their blocked calls).
func (b *blockingIO) stop() { b.once.Do(func() { close(b.done) }) }
