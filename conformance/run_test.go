package conformance

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"
)

// chunk is one write to the server.
type chunk struct {
	data     []byte
	chop     int           // write data in pieces of chop bytes (0: in one write)
	pause    time.Duration // sleep after each piece (after the whole write when chop is 0)
	await    int           // before writing, wait until the server sent this many messages and pongs
	failFast bool          // the server must have failed the connection once this chunk is written
}

type verdict string

const (
	pass      verdict = "pass"
	nonStrict verdict = "non-strict"
	failed    verdict = "FAIL"
)

// want is a case's expected outcome.
type want struct {
	events []event // messages and pongs, in order
	// close lists the codes the server may close with (0: empty close body). Empty means
	// the connection stays open: the test then closes it with 1000 and wants 1000 back.
	close []int
	// lastPongOnly: answering only the most recent of several pings is allowed (RFC 6455
	// 5.5.3) but non-strict.
	lastPongOnly bool
	// nonStrictCodes: closing with one of these codes is accepted as non-strict.
	nonStrictCodes []int
	// summary, if set, describes events in the report instead of listing them.
	summary string
}

type tcase struct {
	id, name string
	send     func() []chunk
	want     want
	verdict  verdict // the verdict livepoll gets
	// offer is the Sec-WebSocket-Extensions header of the handshake ("": none); answer
	// is the one the server must answer with, and window the server_max_window_bits of
	// the answer (0: the server's frames must not be compressed).
	offer, answer string
	window        int
}

func msg(op byte, p []byte) event { return event{kind: "message", op: op, data: p} }
func txt(s string) event          { return msg(opText, []byte(s)) }
func pg(s string) event           { return event{kind: "pong", data: []byte(s)} }

const (
	frameWise = 10 * time.Millisecond // Autobahn: sync after each frame, up to 1 s waits
	octetWise = time.Millisecond      // Autobahn: one TCP segment per octet
	failWait  = time.Second           // how long a fail-fast check waits for the close
)

// runCase runs one case against addr and returns its verdict and what happened.
func runCase(addr string, tc tcase) (verdict, string) {
	c, br, answer, err := dial(addr, tc.offer)
	if err != nil {
		return failed, "dial: " + err.Error()
	}
	if answer != tc.answer {
		c.Close()
		return failed, fmt.Sprintf("Sec-WebSocket-Extensions %q, want %q", answer, tc.answer)
	}
	evc := make(chan event, 1024)
	done := make(chan struct{})
	go func() { readEvents(br, evc, tc.window); close(done) }()
	defer func() { c.Close(); <-done }()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true) // dialConn sets it on a wss connection's socket
	}

	var got []event
	ended := false // eof seen
	// collect pulls events until cond holds, the stream ends, or the deadline passes.
	collect := func(cond func() bool, d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		for !cond() {
			if ended {
				return false
			}
			select {
			case e, ok := <-evc:
				if !ok {
					ended = true
					continue
				}
				got = append(got, e)
				if e.kind == "eof" {
					ended = true
				}
			case <-t.C:
				return false
			}
		}
		return true
	}
	count := func() int {
		n := 0
		for _, e := range got {
			if e.kind == "message" || e.kind == "pong" {
				n++
			}
		}
		return n
	}
	closed := func() bool {
		return slices.ContainsFunc(got, func(e event) bool { return e.kind == "close" || e.kind == "eof" })
	}
	write := func(p []byte) error {
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := c.Write(p)
		return err
	}

	slow := false // a fail-fast point passed without the connection failing
	var writeErr error
	for _, ch := range tc.send() {
		if ch.await > 0 && !collect(func() bool { return count() >= ch.await }, 20*time.Second) {
			break
		}
		if ch.chop == 0 {
			writeErr = write(ch.data)
			time.Sleep(ch.pause)
		} else {
			for p := ch.data; len(p) > 0 && writeErr == nil; {
				n := min(ch.chop, len(p))
				writeErr = write(p[:n])
				p = p[n:]
				time.Sleep(ch.pause)
			}
		}
		if writeErr != nil {
			break
		}
		if ch.failFast && !collect(closed, failWait) {
			slow = true
		}
	}
	if writeErr != nil && !isPeerGone(writeErr) {
		return failed, "write: " + writeErr.Error()
	}

	w := tc.want
	if len(w.close) == 0 {
		n := len(w.events)
		if w.lastPongOnly {
			n = 1
		}
		collect(func() bool { return count() >= len(w.events) || closed() }, 30*time.Second)
		if !closed() {
			// Late pongs a lastPongOnly server will never send: settle briefly.
			if count() < len(w.events) && count() >= n {
				collect(func() bool { return count() >= len(w.events) }, 200*time.Millisecond)
			}
			if err := write(closeWith(1000, "")); err != nil && !isPeerGone(err) {
				return failed, "write close: " + err.Error()
			}
		}
	}
	collect(func() bool { return ended }, 10*time.Second)
	if !ended {
		return failed, fmt.Sprintf("no end of stream within the deadline; got %s", describe(got))
	}
	return judge(tc, got, slow)
}

func isPeerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

func describe(evs []event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.String())
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// judge compares what the server sent with what the case wants.
func judge(tc tcase, got []event, slow bool) (verdict, string) {
	w := tc.want
	var data []event
	var cl *event
	for i, e := range got {
		switch e.kind {
		case "message", "pong":
			if cl != nil {
				return failed, "frames after the close: " + describe(got)
			}
			data = append(data, e)
		case "close":
			if cl != nil {
				return failed, "two closes: " + describe(got)
			}
			cl = &got[i]
		case "eof":
			// A reset after the close frame ends the stream as well as a FIN does.
			if e.err != nil && !(cl != nil && isPeerGone(e.err)) {
				return failed, e.err.Error() + ": " + describe(got)
			}
		}
	}
	v := pass
	codes := w.close
	if len(codes) == 0 {
		codes = []int{1000}
	}
	switch {
	case cl == nil:
		return failed, "connection dropped without a close frame: " + describe(got)
	case slices.Contains(w.nonStrictCodes, cl.code):
		v = nonStrict
	case !slices.Contains(codes, cl.code):
		return failed, fmt.Sprintf("close code %d, want %v: %s", cl.code, codes, describe(got))
	}
	if !slices.EqualFunc(data, w.events, sameEvent) {
		if !w.lastPongOnly || len(data) == 0 || !sameEvent(data[len(data)-1], w.events[len(w.events)-1]) {
			return failed, "got " + describe(data) + ", want " + describe(w.events)
		}
		v = nonStrict
	}
	if slow {
		return nonStrict, "failed only after the rest was sent: " + describe(got)
	}
	return v, describe(got)
}
