package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/bench/internal/tlscert"
	"github.com/livepoll/livepoll/bench/internal/tlsfleet"
	"github.com/livepoll/livepoll/internal/hist"
	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

// ClientResult is what the client process reports (one JSON line).
type ClientResult struct {
	Subs       int     `json:"subs"`
	Published  int64   `json:"published"`   // messages sent, whole run
	Seconds    float64 `json:"seconds"`     // measured window
	Deliveries int64   `json:"deliveries"`  // received in the measured window
	Total      int64   `json:"total"`       // received, whole run
	Lost       int64   `json:"lost"`        // seqs owed to a subscriber it never saw (closed ones included)
	LostClosed int64   `json:"lost_closed"` // the part of Lost owed to subscribers the server closed
	Dup        int64   `json:"dup"`         // seqs seen again or out of order
	Closed     int64   `json:"closed"`      // subscribers closed by the server
	CloseErr   string  `json:"close_err,omitempty"`
	Incomplete int64   `json:"incomplete"`  // closed loop: messages given up on after 2 s
	FrameBytes int     `json:"frame_bytes"` // delivered frame size (uncompressed)
	// WireBytes is the mean size on the wire of a delivered frame (whole run), and
	// Compressed how many deliveries arrived compressed (-compress).
	WireBytes   float64 `json:"wire_bytes_per_delivery"`
	Compressed  int64   `json:"compressed"`
	Latency     Latency `json:"latency"`
	ClientCPUNs int64   `json:"client_cpu_ns"` // in the measured window
}

// Latency holds publish-to-receive percentiles in microseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

func latencyOf(h *hist.Hist) Latency {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Latency{Count: h.Count(), P50: us(h.Quantile(0.5)), P90: us(h.Quantile(0.9)),
		P99: us(h.Quantile(0.99)), P999: us(h.Quantile(0.999)), Max: us(h.Max())}
}

const ring = 1 << 16 // completion counters, by seq modulo ring

// loopState is what one share of the subscribers counts: those of one wsfleet loop
// (ws://), or of one shard of the tlsfleet (wss://, whose connections each have their
// reader goroutine, so handlers run concurrently: hist is under mu).
type loopState struct {
	loop       *wsfleet.Loop // nil with -tls
	mu         sync.Mutex    // guards hist
	hist       hist.Hist
	z          inflater // owned by the loop goroutine (-compress, never with -tls)
	deliveries atomic.Int64
	frameBytes atomic.Int64
	wireBytes  atomic.Int64
	compressed atomic.Int64
	bad        atomic.Int64
}

// runClient holds the subscribers and the publisher. It prints READY once
// the server counts every subscriber, START and END around the measured
// window (the driver samples the server's CPU then), and RESULT <json>.
func runClient() error {
	maxFD, _ := proc.RaiseNOFILE()
	n := *subs
	url := "ws://" + *addrFlag + "/ws"
	if *useTLS {
		url = "wss://" + *addrFlag + "/ws"
	}
	var (
		counts                 [ring]atomic.Int32
		measureFrom, measureTo atomic.Int64
		done                   = make(chan int64, 4096)
		conns                  = make([]*wsfleet.Conn, n)  // ws://
		tconns                 = make([]*tlsfleet.Conn, n) // wss://
		loops                  []*loopState
		fleet                  *tlsfleet.Fleet // wss://
		wg                     sync.WaitGroup
	)
	measureFrom.Store(1<<63 - 1)
	measureTo.Store(1<<63 - 1)
	// onMessage counts one delivered message p of subscriber id, whose bookkeeping is
	// seq, lost and dup; it runs on the goroutine that reads that subscriber.
	onMessage := func(st *loopState, seqp, lostp, dupp *int64, p []byte) {
		wire := frameLen(len(p))
		compressed := false
		if *compress { // st.z belongs to a loop goroutine; wss readers share st and never inflate
			var err error
			if p, compressed, err = st.z.message(p); err != nil {
				st.bad.Add(1)
				return
			}
		}
		seq, ts, ok := parseSeqTS(p)
		if !ok {
			st.bad.Add(1)
			return
		}
		now := time.Now().UnixNano()
		switch {
		case seq == *seqp+1:
		case seq > *seqp+1:
			*lostp += seq - *seqp - 1
		default:
			*dupp++
			return
		}
		*seqp = seq
		st.deliveries.Add(1)
		st.wireBytes.Add(int64(wire))
		if compressed {
			st.compressed.Add(1)
		}
		if st.frameBytes.Load() == 0 {
			st.frameBytes.Store(int64(frameLen(len(p))))
		}
		if ts >= measureFrom.Load() && ts < measureTo.Load() {
			st.mu.Lock()
			st.hist.Record(now - ts)
			st.mu.Unlock()
		}
		if counts[seq%ring].Add(1) == int32(n) {
			select {
			case done <- seq:
			default:
			}
		}
	}
	if *useTLS {
		// A few shards, so that concurrent readers seldom wait for one histogram.
		for range 8 {
			loops = append(loops, &loopState{})
		}
		fleet = tlsfleet.New(func(c *tlsfleet.Conn, f wsfleet.Frame) {
			if c.ID >= 0 { // not the publisher's connection
				onMessage(loops[c.ID%len(loops)], &c.Seq, &c.Lost, &c.Dup, f.Payload)
			}
		})
	} else {
		for range 2 {
			st := &loopState{}
			l, err := wsfleet.NewLoop(int(maxFD), func(c *wsfleet.Conn, p []byte) {
				if c.ID >= 0 { // not the publisher's connection
					onMessage(st, &c.Seq, &c.Lost, &c.Dup, p)
				}
			})
			if err != nil {
				return err
			}
			st.loop = l
			loops = append(loops, st)
			wg.Go(l.Run)
		}
	}
	closedConns := func() (c int64) {
		if fleet != nil {
			return fleet.Closed.Load()
		}
		for _, st := range loops {
			c += st.loop.Closed.Load()
		}
		return c
	}
	lastErr := func() error {
		if fleet != nil {
			return fleet.LastErr()
		}
		var last error
		for _, st := range loops {
			if e := st.loop.LastErr(); e != nil {
				last = e
			}
		}
		return last
	}
	deliveries := func() (d int64) {
		for _, st := range loops {
			d += st.deliveries.Load()
		}
		return d
	}

	subscribe := []byte(`{"topic":"subscribe","data":{"topic":"fan"}}`)
	var err error
	var tlsConfig *tls.Config
	switch {
	case *useTLS:
		if tlsConfig, err = tlscert.LoadClientConfig(*caFile); err != nil {
			return err
		}
		err = fleet.DialMany(context.Background(), tlsfleet.DialSpec{
			URL: url, Config: tlsConfig, From: 0, To: n, Concurrency: *dialConc, Rate: *dialRate,
			First:  func(int) []byte { return subscribe },
			Opened: func(c *tlsfleet.Conn) error { tconns[c.ID] = c; return nil },
		})
	case *compress:
		err = dialCompressing(context.Background(), url, n, *dialConc, *dialRate, subscribe, func(i, fd int, leftover []byte) error {
			c := &wsfleet.Conn{FD: fd, ID: i}
			conns[i] = c
			return loops[i%len(loops)].loop.Add(c, leftover)
		})
	default:
		err = wsfleet.DialMany(context.Background(), wsfleet.DialSpec{
			URL: url, From: 0, To: n, Concurrency: *dialConc, Rate: *dialRate,
			First: func(int) []byte { return subscribe },
			Opened: func(d wsfleet.Dialed) error {
				c := &wsfleet.Conn{FD: d.FD, ID: d.Index}
				conns[d.Index] = c
				return loops[d.Index%len(loops)].loop.Add(c, d.Leftover)
			},
		})
	}
	if err != nil {
		return err
	}
	if _, err := harness.WaitSessions(*statsAddr, int64(n), time.Minute); err != nil {
		return err
	}
	var pubConn interface {
		Write(b []byte, timeout time.Duration) error
		Closed() bool
	}
	if fleet != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := fleet.Dial(ctx, url, wsfleet.SourceIPs[0], tlsConfig, -1, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("publisher: %w", err)
		}
		pubConn = c
	} else {
		pubFD, leftover, err := wsfleet.Dial(context.Background(), url, wsfleet.SourceIPs[0], nil)
		if err != nil {
			return fmt.Errorf("publisher: %w", err)
		}
		c := &wsfleet.Conn{FD: pubFD, ID: -1}
		if err := loops[0].loop.Add(c, leftover); err != nil {
			return err
		}
		pubConn = c
	}
	fmt.Println("READY")

	// The delivered payload is {"topic":"fan","data":<what we publish>}; pad
	// it so the frame (2-byte header) is -frame bytes while ts has 19 digits.
	fixed := 2 + len(`{"topic":"fan","data":{"seq":,"ts":1234567890123456789,"pad":""}}`)
	pad := bytes.Repeat([]byte{'x'}, max(0, *frame-fixed))
	if *compress {
		pad = compressiblePad(len(pad))
	}
	var msg, wire []byte
	publish := func(seq int64) error {
		counts[seq%ring].Store(0)
		msg = append(msg[:0], `{"topic":"publish","data":{"topic":"fan","data":{"seq":`...)
		msg = strconv.AppendInt(msg, seq, 10)
		msg = append(msg, `,"ts":`...)
		msg = strconv.AppendInt(msg, time.Now().UnixNano(), 10)
		msg = append(msg, `,"pad":"`...)
		msg = append(msg, pad[:max(0, len(pad)-len(strconv.AppendInt(nil, seq, 10)))]...)
		msg = append(msg, `"}}}`...)
		wire = wsfleet.AppendClientFrame(wire[:0], ws.OpText, msg)
		return pubConn.Write(wire, 5*time.Second)
	}

	var (
		res            = ClientResult{Subs: n}
		seq, completed int64
		finished       [ring]bool
		start          = time.Now()
		t0             = start.Add(*warmup)
		t1             = t0.Add(*duration)
		started        bool
		del0, cpu0     int64
		mt0            time.Time
		lastProgress   = start
		tick           = time.NewTicker(20 * time.Millisecond)
	)
	defer tick.Stop()
	target := func() int32 { return int32(int64(n) - closedConns()) }
	markDone := func(s int64) {
		if s > completed && s <= seq {
			finished[s%ring] = true
		}
		for completed < seq && finished[(completed+1)%ring] {
			finished[(completed+1)%ring] = false
			completed++
			lastProgress = time.Now()
		}
	}
	cpuSelf := func() int64 { u, s := srvstats.CPUSelf(); return u + s }
	for {
		now := time.Now()
		if !started && !now.Before(t0) {
			started = true
			measureFrom.Store(now.UnixNano())
			mt0, del0, cpu0 = now, deliveries(), cpuSelf()
			fmt.Println("START")
		}
		if !now.Before(t1) {
			measureTo.Store(now.UnixNano())
			res.Seconds = now.Sub(mt0).Seconds()
			res.Deliveries = deliveries() - del0
			res.ClientCPUNs = cpuSelf() - cpu0
			fmt.Println("END")
			break
		}
		if pubConn.Closed() {
			return fmt.Errorf("publisher connection closed: %v", lastErr())
		}
		if *rate > 0 {
			next := start.Add(time.Duration(float64(seq) / *rate * float64(time.Second)))
			if wait := next.Sub(now); wait > 0 {
				time.Sleep(min(wait, t1.Sub(now)))
				continue
			}
			seq++
			if err := publish(seq); err != nil {
				return fmt.Errorf("publish %d: %w", seq, err)
			}
			continue
		}
		if seq-completed < int64(*window) {
			seq++
			if err := publish(seq); err != nil {
				return fmt.Errorf("publish %d: %w", seq, err)
			}
			continue
		}
		select {
		case s := <-done:
			markDone(s)
		case <-tick.C:
			// Subscribers the server closed never complete a message:
			// compare against the live ones.
			for s := completed + 1; s <= seq; s++ {
				if counts[s%ring].Load() >= target() {
					markDone(s)
				}
			}
			if time.Since(lastProgress) > 2*time.Second {
				res.Incomplete++
				finished[(completed+1)%ring] = true
				markDone(completed + 1)
			}
		}
	}

	// Drain: wait (bounded) for the last message to reach every live subscriber.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if seq == 0 || counts[seq%ring].Load() >= target() {
			break
		}
	}
	if fleet != nil {
		fleet.Stop()
	}
	for _, st := range loops {
		if st.loop != nil {
			st.loop.Stop()
		}
	}
	wg.Wait()

	res.Published = seq
	res.Total = deliveries()
	res.Closed = closedConns()
	var h hist.Hist
	var wireTotal int64
	if e := lastErr(); e != nil && res.Closed > 0 {
		res.CloseErr = fmt.Sprint(e)
	}
	for _, st := range loops {
		h.Merge(&st.hist)
		res.FrameBytes = max(res.FrameBytes, int(st.frameBytes.Load()))
		wireTotal += st.wireBytes.Load()
		res.Compressed += st.compressed.Load()
		if b := st.bad.Load(); b > 0 {
			res.CloseErr += fmt.Sprintf(" (%d unparsable messages)", b)
		}
	}
	accounts := make([]account, n)
	for i := range n {
		if c := tconns[i]; c != nil {
			accounts[i] = account{seq: c.Seq, lost: c.Lost, dup: c.Dup, closed: c.Closed()}
		} else if c := conns[i]; c != nil {
			accounts[i] = account{seq: c.Seq, lost: c.Lost, dup: c.Dup, closed: c.Closed()}
		}
	}
	res.Lost, res.LostClosed, res.Dup = tally(seq, accounts)
	res.Latency = latencyOf(&h)
	if res.Total > 0 {
		res.WireBytes = float64(wireTotal) / float64(res.Total)
	}
	if fleet != nil {
		fleet.CloseAll()
	}
	for _, st := range loops {
		if st.loop != nil {
			st.loop.CloseAll()
		}
	}
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
	return nil
}

// account is one subscriber's bookkeeping at the end of a run: the last
// sequence number it saw, the gaps and repeats before it, and whether the
// server closed it.
type account struct {
	seq, lost, dup int64
	closed         bool
}

// tally adds up what the subscribers were owed after published messages:
// gaps, repeats, and the tail each never received. A subscriber the server
// closed is owed every message published after its last one just as much,
// so its tail counts as lost too (and also in lostClosed).
func tally(published int64, subs []account) (lost, lostClosed, dup int64) {
	for _, a := range subs {
		dup += a.dup
		tail := published - a.seq
		lost += a.lost + tail
		if a.closed {
			lostClosed += tail
		}
	}
	return lost, lostClosed, dup
}

// frameLen is the size of an unmasked server frame with an n-byte payload.
func frameLen(n int) int {
	switch {
	case n < 126:
		return n + 2
	case n <= 0xffff:
		return n + 4
	}
	return n + 10
}

var seqKey, tsKey = []byte(`"seq":`), []byte(`"ts":`)

// parseSeqTS finds "seq":N and "ts":T in a delivered message.
func parseSeqTS(p []byte) (seq, ts int64, ok bool) {
	i := bytes.Index(p, seqKey)
	if i < 0 {
		return 0, 0, false
	}
	p = p[i+len(seqKey):]
	seq, k := atoi(p)
	if k == 0 {
		return 0, 0, false
	}
	p = p[k:]
	j := bytes.Index(p, tsKey)
	if j < 0 {
		return 0, 0, false
	}
	ts, k = atoi(p[j+len(tsKey):])
	return seq, ts, k > 0
}

func atoi(p []byte) (v int64, n int) {
	for n < len(p) && p[n] >= '0' && p[n] <= '9' {
		v = v*10 + int64(p[n]-'0')
		n++
	}
	return v, n
}
