//go:build linux

package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

// errorKind names the kind of a dial, read or write error for the report.
func errorKind(err error) string {
	var status ws.StatusError
	var ce *wsfleet.CloseError
	switch {
	case errors.As(err, &status):
		return "handshake_status_" + strconv.Itoa(int(status))
	case errors.As(err, &ce):
		return "server_close_" + strconv.Itoa(ce.Code)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connect_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return "timeout"
	case errors.Is(err, wsfleet.ErrCloseTimeout):
		return "close_timeout"
	case errors.Is(err, wsfleet.ErrWriteBlocked):
		return "write_blocked"
	case errors.Is(err, wsfleet.ErrProtocol):
		return "protocol"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "server_eof"
	}
	return "other"
}

// hints say how to lift the limit behind an error kind.
var hints = map[string]string{
	"too_many_open_files":  "a process ran out of descriptors: raise the hard limit (ulimit -Hn as root, /etc/security/limits.conf, systemd LimitNOFILE; /proc/sys/fs/nr_open caps it) or lower -per-proc; see docs/tuning.md",
	"no_local_port":        "ephemeral ports ran out: add source addresses (-src) or widen net.ipv4.ip_local_port_range",
	"connect_refused":      "nothing listens there, or the accept queue overflowed: check the server, raise net.core.somaxconn before starting it, or lower -connect-rate",
	"timeout":              "the server did not answer in time: it is overloaded or its SYN/accept queue is full; lower -connect-rate or -rate",
	"handshake_status_503": "the server refused the upgrade (MaxSessions reached, or shutting down)",
	"ready_timeout":        "subscribed connections whose echo barrier did not come back in time: the server is slow or does not implement echo",
	"write_blocked":        "the server did not read for seconds: it is overloaded",
}

// errorCount is one kind's count and one example message.
type errorCount struct {
	Count   int64  `json:"count"`
	Example string `json:"example"`
	Hint    string `json:"hint,omitempty"`
}

// errorCounts counts errors by kind. It is safe for concurrent use.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]*errorCount
}

func (e *errorCounts) add(kind string, err error) {
	e.addN(kind, 1, err)
}

func (e *errorCounts) addN(kind string, n int64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]*errorCount{}
	}
	c := e.m[kind]
	if c == nil {
		c = &errorCount{Hint: hints[kind]}
		if err != nil {
			c.Example = err.Error()
		}
		e.m[kind] = c
	}
	c.Count += n
}

func (e *errorCounts) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, c := range e.m {
		n += c.Count
	}
	return n
}

// snapshot copies the counts.
func (e *errorCounts) snapshot() map[string]errorCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]errorCount, len(e.m))
	for k, c := range e.m {
		out[k] = *c
	}
	return out
}

// merge adds counts from another process.
func mergeErrors(dst map[string]errorCount, src map[string]errorCount) {
	for k, c := range src {
		d, ok := dst[k]
		if !ok {
			d = c
		} else {
			d.Count += c.Count
		}
		dst[k] = d
	}
}

// reasonCounts counts connections by wsfleet.Reason. It is safe for concurrent use.
type reasonCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (r *reasonCounts) add(reason string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]int64{}
	}
	r.m[reason] += n
}

// snapshot copies the counts (an empty map, not nil, so that JSON shows {}).
func (r *reasonCounts) snapshot() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64, len(r.m))
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

// mergeCounts adds src's counts to dst.
func mergeCounts(dst, src map[string]int64) {
	for k, v := range src {
		dst[k] += v
	}
}
