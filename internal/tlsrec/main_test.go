package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// result is what the server side of the harness saw.
type result struct {
	conn  *Conn
	err   error // the handshake's, or the first error of Open or the socket
	state tls.ConnectionState
	// The Conn's sequence numbers right after the takeover.
	firstRead, firstWrite uint64
}

// harness is the test's stand-in for the event loop: for each accepted socket a
// goroutine reads it (readSize bytes at a time) and feeds the Handshake, then the Conn;
// another writes what they produce. The server echoes what it opens; a message starting
// with "KEYUPDATE" is answered by a KeyUpdate(update_requested) first.
type harness struct {
	t        testing.TB
	ln       net.Listener
	r        *Runner
	readSize int
	results  chan result
	wg       sync.WaitGroup
}

func newHarness(t testing.TB, cfg *tls.Config, opts Options, readSize int) *harness {
	t.Helper()
	r, err := NewRunner(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ln: ln, r: r, readSize: readSize, results: make(chan result, 1024)}
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(h.close)
	return h
}

func (h *harness) addr() string { return h.ln.Addr().String() }

func (h *harness) close() {
	h.ln.Close()
	h.r.Close()
	h.wg.Wait()
}

func (h *harness) accept() {
	defer h.wg.Done()
	for {
		nc, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			res := serveConn(h.r, nc, h.readSize, 0)
			select {
			case h.results <- res:
			default: // more than 1024 unread results: no test serves that many
			}
		}()
	}
}

// next waits for the result of the next connection the harness served.
func (h *harness) next() result {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no server result within 10 s")
	}
	return result{}
}

// serveConn runs one connection: the handshake, then an echo, to its end or, with
// echoBytes > 0, until it echoed that many bytes (the Conn is then left as it is).
func serveConn(r *Runner, nc net.Conn, readSize, echoBytes int) (res result) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	chunks := make(chan []byte, 16)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			b := make([]byte, readSize)
			n, err := nc.Read(b)
			if n > 0 {
				select {
				case chunks <- b[:n]:
				case <-stop:
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	wake := make(chan struct{}, 1)
	hs := r.Start(nc.LocalAddr(), nc.RemoteAddr(), func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer hs.Abort()
	// Handshake.
	var pending [][]byte // bytes Feed refused because the handshake had just ended
	for !hs.Done() {
		select {
		case b := <-chunks:
			if err := hs.Feed(b); errors.Is(err, ErrHandshakeDone) {
				pending = append(pending, b)
			} else if err != nil {
				nc.Write(hs.Output(nil))
				return result{err: err}
			}
		case <-wake:
		case err := <-readErr:
			return result{err: err}
		}
		if out := hs.Output(nil); len(out) > 0 {
			if _, err := nc.Write(out); err != nil {
				return result{err: err}
			}
		}
	}
	if out := hs.Output(nil); len(out) > 0 {
		nc.Write(out)
	}
	c, rest, err := hs.Result()
	if err != nil {
		return result{err: err}
	}
	res = result{conn: c, state: hs.ConnectionState(), firstRead: c.in.seq, firstWrite: c.out.seq}
	if echoBytes == 0 {
		defer c.Release()
	}
	var plain, out []byte
	step := func(in []byte) error {
		var err error
		plain, err = c.Open(plain[:0], in)
		out = out[:0]
		if len(plain) > 0 {
			if bytes.HasPrefix(plain, []byte("KEYUPDATE")) {
				out, _ = c.SealKeyUpdate(out, true)
			}
			out, _ = c.Seal(out, plain)
		}
		if c.Pending() {
			out = c.SealPending(out)
		}
		if len(out) > 0 {
			if _, werr := nc.Write(out); werr != nil && err == nil {
				err = werr
			}
		}
		if echoBytes > 0 && len(plain) > 0 {
			if echoBytes -= len(plain); echoBytes <= 0 {
				return errEchoesDone
			}
		}
		return err
	}
	if err := step(rest); err != nil {
		res.err = err
		return res
	}
	for _, b := range pending {
		if err := step(b); err != nil {
			res.err = err
			return res
		}
	}
	for {
		select {
		case b := <-chunks:
			if err := step(b); err != nil {
				res.err = err
				return res
			}
		case err := <-readErr:
			// Drain what the reader had queued before its error.
			for {
				select {
				case b := <-chunks:
					if err := step(b); err != nil {
						res.err = err
						return res
					}
					continue
				default:
				}
				break
			}
			if err == io.EOF {
				err = c.CloseRead()
			}
			res.err = err
			return res
		}
	}
}

var errEchoesDone = errors.New("echoed as many bytes as asked")

// roundTrip writes msg on c and reads the same number of bytes back.
func roundTrip(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal("write:", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal("read:", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs: %d bytes back, first %q", len(got), got[:min(len(got), 32)])
	}
}
