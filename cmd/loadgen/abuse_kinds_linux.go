//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

// What each abuser kind does while the run lasts (see abuse_linux.go).

// writeUntil is the write timeout of an abuser's write: it may wait until the run ends,
// and a little more, so that a server pushing back is seen as a write still waiting.
func writeUntil(end time.Time) time.Duration {
	return max(100*time.Millisecond, time.Until(end)+500*time.Millisecond)
}

// abuseEcho is a masked echo request of about size bytes.
func abuseEcho(size int) []byte {
	payload := make([]byte, 0, size+32)
	payload = append(payload, `{"topic":"echo","data":"`...)
	for len(payload) < size-2 {
		payload = append(payload, 'x')
	}
	payload = append(payload, `"}`...)
	return wsfleet.AppendClientFrame(nil, ws.OpText, payload)
}

// stream writes frame to a loop-read abuser as fast as the socket takes it.
func (a *abuse) stream(ctx context.Context, ab *abuser, frame []byte, end time.Time) {
	for ctx.Err() == nil {
		if err := ab.c.Write(frame, writeUntil(end)); err != nil {
			if errors.Is(err, wsfleet.ErrWriteBlocked) {
				ab.blocked.Store(true) // the server stopped reading it: the socket stays open
			} else if !errors.Is(err, wsfleet.ErrClosed) {
				a.loop.Kill(ab.c, err)
			}
			return
		}
		ab.sent.Add(int64(len(frame)))
	}
}

// rawStream writes frame to a raw (unread or slowly read) abuser, every interval or
// (0) as fast as the socket takes it.
func (a *abuse) rawStream(ctx context.Context, ab *abuser, frame []byte, end time.Time, interval time.Duration) {
	var tick *time.Ticker
	if interval > 0 {
		tick = time.NewTicker(interval)
		defer tick.Stop()
	}
	for ctx.Err() == nil {
		if err := wsfleet.WriteAll(ab.c.FD, frame, writeUntil(end)); err != nil {
			if errors.Is(err, wsfleet.ErrWriteBlocked) {
				ab.blocked.Store(true)
			} else {
				a.setEarly(ab, &wsfleet.WriteError{Err: err})
			}
			return
		}
		ab.sent.Add(int64(len(frame)))
		if tick != nil {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}
}

func (a *abuse) setEarly(ab *abuser, err error) {
	ab.mu.Lock()
	defer ab.mu.Unlock()
	if ab.earlyErr == nil {
		ab.earlyErr = err
	}
}

func (a *abuse) early(ab *abuser) error {
	ab.mu.Lock()
	defer ab.mu.Unlock()
	return ab.earlyErr
}

// readSlowly reads the slow readers' sockets, -slow-read-rate bytes a second each, in
// ten turns a second, keeping the bytes for the final drain to parse.
func (a *abuse) readSlowly(ctx context.Context, slow []*abuser) {
	per := max(1, a.cfg.SlowReadRate/10)
	buf := make([]byte, per)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, ab := range slow {
			if a.early(ab) != nil {
				continue
			}
			n, err := syscall.Read(ab.c.FD, buf)
			switch {
			case n > 0:
				ab.kept = append(ab.kept, buf[:n]...)
				ab.received += int64(n)
			case err == syscall.EAGAIN || err == syscall.EINTR:
			case err == nil:
				a.setEarly(ab, errEOFRead)
			default:
				a.setEarly(ab, err)
			}
		}
	}
}

var errEOFRead = fmt.Errorf("loadgen: connection closed by the server: %w", io.EOF)

// churnLoop connects, subscribes and closes (close frame, then the socket) until ctx is
// done.
func (a *abuse) churnLoop(ctx context.Context, i int) {
	sub := subscribeMsg(topicName(i))
	closeFrame := wsfleet.AppendClientFrame(nil, ws.OpClose, []byte{0x03, 0xe8})
	subLen := int64(len(wsfleet.AppendClientFrame(nil, ws.OpText, sub)))
	for k := 0; ctx.Err() == nil; k++ {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fd, _, err := wsfleet.Dial(dctx, a.url, a.sources[(i+k)%len(a.sources)], sub)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.churn.mu.Lock()
			a.churn.failed[errorKind(err)]++
			a.churn.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			continue
		}
		sent := subLen
		if wsfleet.WriteAll(fd, closeFrame, 100*time.Millisecond) == nil {
			sent += int64(len(closeFrame))
		}
		syscall.Close(fd)
		a.churn.mu.Lock()
		a.churn.cycles++
		a.churn.sent += sent
		a.churn.mu.Unlock()
	}
}
