//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livepoll/livepoll/internal/hist"
	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

// partSpec is one process's share of the fleet: connections From..To-1. Workers get it
// as JSON on their first stdin line.
type partSpec struct {
	Index       int           `json:"index"`
	URL         string        `json:"url"`
	From        int           `json:"from"`
	To          int           `json:"to"`
	Scenario    string        `json:"scenario"`
	Topics      int           `json:"topics"`
	Rate        float64       `json:"rate"`         // this part's share of echo or churn -rate
	Inflight    int           `json:"inflight"`     // echo: requests in flight per connection (closed loop); 0: open loop at Rate
	ConnectRate int           `json:"connect_rate"` // this part's share
	Concurrency int           `json:"concurrency"`
	Sources     []string      `json:"sources"` // "" for "the kernel picks"
	Size        int           `json:"size"`
	Settle      time.Duration `json:"settle"`
	Drain       time.Duration `json:"drain"`
	Timeout     time.Duration `json:"timeout"` // a worker exits after this long, whatever happens
}

// barrier reports whether connections subscribe and confirm it with an echo barrier.
func (s partSpec) barrier() bool {
	return s.Scenario == scenarioSubscribe || s.Scenario == scenarioPublish
}

// subscribes reports whether connections subscribe as their first message.
func (s partSpec) subscribes() bool { return s.barrier() || s.Scenario == scenarioChurn }

// progress is a process's running counters.
type progress struct {
	Connected    int64 `json:"connected"`     // handshakes that succeeded (churn's included)
	Failed       int64 `json:"failed"`        // dials that failed
	Open         int64 `json:"open"`          // connections open now (publishers not counted)
	Ready        int64 `json:"ready"`         // connections subscribed (barrier answered) or, without a barrier, connected
	ServerClosed int64 `json:"server_closed"` // connections the server closed or that broke
	Deliveries   int64 `json:"deliveries"`    // publish deliveries and echo answers received
	Sent         int64 `json:"sent"`          // echo requests sent
	ChurnClosed  int64 `json:"churn_closed"`  // churn: closing handshakes this side started and finished
	ChurnOpened  int64 `json:"churn_opened"`  // churn: replacement connections opened
	Errors       int64 `json:"errors"`
}

// mark is a process's counters at one instant; the coordinator takes one from every part
// when the load phase starts and one when it ends, for the CPU per delivery.
type mark struct {
	Deliveries int64 `json:"deliveries"`
	CPUNs      int64 `json:"cpu_ns"` // this process's user + system CPU time
}

func (p *progress) add(o progress) {
	p.Connected += o.Connected
	p.Failed += o.Failed
	p.Open += o.Open
	p.Ready += o.Ready
	p.ServerClosed += o.ServerClosed
	p.Deliveries += o.Deliveries
	p.Sent += o.Sent
	p.ChurnClosed += o.ChurnClosed
	p.ChurnOpened += o.ChurnOpened
	p.Errors += o.Errors
}

// readyReport is a process's state at the end of its connect phase.
type readyReport struct {
	Progress      progress `json:"progress"`
	DialSeconds   float64  `json:"dial_seconds"`   // from the first dial to the last handshake's end
	ReadyTimeouts int64    `json:"ready_timeouts"` // subscriptions not confirmed within -settle
}

// partResult is a process's share of the report.
type partResult struct {
	Index      int         `json:"index"`
	PID        int         `json:"pid"`
	Conns      int         `json:"conns"` // connections assigned
	Ready      readyReport `json:"ready"`
	Progress   progress    `json:"progress"` // at the end
	Connect    hist.Hist   `json:"connect"`  // handshake times
	Subscribe  hist.Hist   `json:"subscribe"`
	Latency    hist.Hist   `json:"latency"`    // publish→receive or echo round trip
	Expected   int64       `json:"expected"`   // deliveries owed to every connection, the server-closed ones included
	Lost       int64       `json:"lost"`       // owed and not received by the end of the drain (gaps included)
	Unanswered int64       `json:"unanswered"` // echo: requests sent that got no answer (part of Lost)
	// ServerClosedBy counts the connections the server closed (or that broke) by
	// wsfleet.Reason; publishers' as "publisher_<reason>".
	ServerClosedBy map[string]int64      `json:"server_closed_by"`
	Dup            int64                 `json:"dup"`
	Errors         map[string]errorCount `json:"errors"`
	RSSBytes       uint64                `json:"rss_bytes"`
	CPUNs          int64                 `json:"cpu_ns"`
	NOFILESoft     uint64                `json:"nofile_soft"`
	NOFILEHard     uint64                `json:"nofile_hard"`
	DrainFailed    bool                  `json:"drain_failed"` // messages were still missing when -drain ran out
}

// fleet is one process's connections and what it measures of them.
type fleet struct {
	spec    partSpec
	sources []net.IP
	loops   []*wsfleet.Loop
	running sync.WaitGroup

	conns []atomic.Pointer[wsfleet.Conn] // by index − From; churn replaces them
	// By index − From, touched by the loop goroutine owning that index (index % loops):
	ready []bool  // barrier answered
	sent  []int64 // echo requests sent; written by the sender (closed loop: the loop goroutine), read after it stopped

	connected, failed, open, readyN, serverClosed atomic.Int64
	deliveries, sentN, churnClosed, churnOpened   atomic.Int64
	closing                                       atomic.Int64 // closing handshakes this side started, not finished
	echoing                                       atomic.Bool  // closed-loop echo: answers send the next request
	errs                                          errorCounts
	closedBy                                      reasonCounts

	connectMu   sync.Mutex
	connectHist hist.Hist
	latency     []hist.Hist // by loop, loop goroutine only
	subscribe   []hist.Hist // by loop, loop goroutine only
	echoBufs    []echoBuf   // by loop, loop goroutine only: closed-loop echo's frames

	readyRep readyReport

	loadCancel context.CancelFunc
	loadDone   sync.WaitGroup
	// dialCtx ends dials still in flight when the fleet closes (churn's replacements
	// may finish after the load phase).
	dialCtx    context.Context
	dialCancel context.CancelFunc
}

// newFleet starts the loops of a part; connect dials.
func newFleet(spec partSpec) (*fleet, error) {
	soft, _, err := proc.NOFILE()
	if err != nil {
		return nil, err
	}
	n := spec.To - spec.From
	f := &fleet{
		spec:  spec,
		conns: make([]atomic.Pointer[wsfleet.Conn], n),
		ready: make([]bool, n),
		sent:  make([]int64, n),
	}
	f.dialCtx, f.dialCancel = context.WithCancel(context.Background())
	for _, s := range spec.Sources {
		f.sources = append(f.sources, net.ParseIP(s)) // "" parses to nil: the kernel picks
	}
	if len(f.sources) == 0 {
		f.sources = []net.IP{nil}
	}
	nloops := max(1, min(4, runtime.GOMAXPROCS(0)))
	f.latency = make([]hist.Hist, nloops)
	f.subscribe = make([]hist.Hist, nloops)
	f.echoBufs = make([]echoBuf, nloops)
	for li := range nloops {
		l, err := wsfleet.NewLoop(int(soft), f.handler(li))
		if err != nil {
			f.close()
			return nil, err
		}
		l.OnClose = f.closed
		f.loops = append(f.loops, l)
		f.running.Go(l.Run)
	}
	return f, nil
}

func (f *fleet) loopOf(idx int) *wsfleet.Loop { return f.loops[idx%len(f.loops)] }

// handler reads the messages of loop li's connections.
func (f *fleet) handler(li int) wsfleet.Handler {
	return func(c *wsfleet.Conn, p []byte) {
		if c.ID < 0 {
			return // a publisher's connection
		}
		echo, seq, ts, ok := parseDelivery(p)
		if !ok {
			f.errs.add("bad_message", fmt.Errorf("unparsable message %.80q", p))
			return
		}
		now := time.Now().UnixNano()
		if echo && seq == 0 { // the barrier behind the subscribe
			idx := c.ID - f.spec.From
			if !f.ready[idx] {
				f.ready[idx] = true
				f.readyN.Add(1)
				f.subscribe[li].Record(now - ts)
			}
			return
		}
		switch {
		case seq == c.Seq+1:
		case seq > c.Seq+1:
			c.Lost += seq - c.Seq - 1
		default:
			c.Dup++
			return
		}
		c.Seq = seq
		f.deliveries.Add(1)
		f.latency[li].Record(now - ts)
		if echo && f.echoing.Load() {
			f.sendInflight(li, c, c.ID-f.spec.From, 1) // closed loop: the answer's replacement
		}
	}
}

// closed is every loop's OnClose: it counts the close, and its error by kind (writers
// that fail Kill the connection and leave the counting to this).
func (f *fleet) closed(c *wsfleet.Conn, err error) {
	if c.ID >= 0 {
		f.open.Add(-1)
	}
	if c.Closing() {
		f.closing.Add(-1)
	}
	switch {
	case c.Closing() && err == nil:
		f.churnClosed.Add(1)
	case c.Closing():
		f.errs.add(errorKind(err), err)
	default:
		f.serverClosed.Add(1)
		kind, reason := errorKind(err), wsfleet.Reason(err)
		if c.ID < 0 {
			kind, reason = "publisher_"+kind, "publisher_"+reason
		}
		f.errs.add(kind, err)
		f.closedBy.add(reason, 1)
	}
}

func (f *fleet) firstMessage(i int) []byte {
	if !f.spec.subscribes() {
		return nil
	}
	return subscribeMsg(topicName(i % f.spec.Topics))
}

// opened takes over a new connection.
func (f *fleet) opened(d wsfleet.Dialed) error {
	idx := d.Index - f.spec.From
	c := &wsfleet.Conn{FD: d.FD, ID: d.Index}
	f.conns[idx].Store(c)
	f.open.Add(1)
	if err := f.loopOf(idx).Add(c, d.Leftover); err != nil {
		f.open.Add(-1)
		f.failed.Add(1)
		f.errs.add(errorKind(err), err)
		return nil
	}
	f.connected.Add(1)
	f.connectMu.Lock()
	f.connectHist.Record(int64(d.Took))
	f.connectMu.Unlock()
	if !f.spec.barrier() {
		f.readyN.Add(1)
		return nil
	}
	frame, _ := echoFrame(nil, nil, 0, time.Now().UnixNano(), 0)
	if err := c.Write(frame, time.Second); err != nil {
		f.loopOf(idx).Kill(c, err) // counted by closed
	}
	return nil
}

func (f *fleet) dialFailed(i int, err error) {
	f.failed.Add(1)
	f.errs.add(errorKind(err), err)
}

// connect opens the part's connections and, for subscribing scenarios, waits (up to
// Settle) for every subscription to be confirmed.
func (f *fleet) connect(ctx context.Context) readyReport {
	start := time.Now()
	_ = wsfleet.DialMany(ctx, wsfleet.DialSpec{
		URL: f.spec.URL, From: f.spec.From, To: f.spec.To,
		Concurrency: f.spec.Concurrency, Rate: f.spec.ConnectRate,
		Sources: f.sources, Attempts: 1, Timeout: 10 * time.Second,
		First: f.firstMessage, Opened: f.opened, Failed: f.dialFailed,
	})
	rep := readyReport{DialSeconds: time.Since(start).Seconds()}
	n := int64(f.spec.To - f.spec.From)
	if f.spec.barrier() {
		deadline := time.Now().Add(f.spec.Settle)
		for f.readyN.Load()+f.failed.Load()+f.serverClosed.Load() < n && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if missing := n - f.readyN.Load() - f.failed.Load() - f.serverClosed.Load(); missing > 0 {
			rep.ReadyTimeouts = missing
			f.errs.addN("ready_timeout", missing, fmt.Errorf("%d subscriptions not confirmed within -settle %v", missing, f.spec.Settle))
		}
	}
	rep.Progress = f.progress()
	f.readyRep = rep
	// The handshakes left garbage (gobwas/ws's buffers, net.Conns) that the heap would
	// keep as spare room: return it, so that the process's RSS is what the fleet holds.
	debug.FreeOSMemory()
	return rep
}

func (f *fleet) progress() progress {
	return progress{
		Connected:    f.connected.Load(),
		Failed:       f.failed.Load(),
		Open:         f.open.Load(),
		Ready:        f.readyN.Load(),
		ServerClosed: f.serverClosed.Load(),
		Deliveries:   f.deliveries.Load(),
		Sent:         f.sentN.Load(),
		ChurnClosed:  f.churnClosed.Load(),
		ChurnOpened:  f.churnOpened.Load(),
		Errors:       f.errs.total(),
	}
}

// startLoad starts the part's own load: echo requests or churn. (Publishing is the
// coordinator's.)
func (f *fleet) startLoad() {
	ctx, cancel := context.WithCancel(context.Background())
	f.loadCancel = cancel
	switch f.spec.Scenario {
	case scenarioEcho:
		if f.spec.Inflight > 0 {
			f.startInflight()
			break
		}
		f.loadDone.Go(func() { f.sendEchoes(ctx) })
	case scenarioChurn:
		f.loadDone.Go(func() { f.churn(ctx) })
	}
}

// paced calls send(k, due) for k = 0, 1, … at rate per second until ctx is done,
// sleeping until each message's due time. due is what latency is measured from, so a
// sender that falls behind (a late timer, a busy machine) shows up in the latency
// rather than hiding it.
func paced(ctx context.Context, rate float64, send func(k int64, due time.Time)) {
	if rate <= 0 {
		<-ctx.Done()
		return
	}
	start := time.Now()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for k := int64(0); ; k++ {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		send(k, due)
	}
}

// sendEchoes sends echo requests round robin over the part's connections.
func (f *fleet) sendEchoes(ctx context.Context) {
	var frame, scratch []byte
	n := len(f.conns)
	paced(ctx, f.spec.Rate, func(k int64, due time.Time) {
		idx := int(k % int64(n))
		c := f.conns[idx].Load()
		if c == nil || c.Closed() {
			return
		}
		seq := f.sent[idx] + 1
		frame, scratch = echoFrame(frame[:0], scratch, seq, due.UnixNano(), f.spec.Size)
		if err := c.Write(frame, 2*time.Second); err != nil {
			if !errors.Is(err, wsfleet.ErrClosed) {
				f.loopOf(idx).Kill(c, err) // counted by closed
			}
			return
		}
		f.sent[idx] = seq
		f.sentN.Add(1)
	})
}

// echoBuf is a loop's buffers for the closed-loop echo's requests.
type echoBuf struct{ frame, scratch []byte }

// startInflight starts the closed-loop echo: each loop sends Inflight requests on each of
// its connections, and from then on its handler sends one for every answer, until stop.
// All of a connection's requests go out from its loop's goroutine, which alone touches
// its sent count meanwhile.
func (f *fleet) startInflight() {
	f.echoing.Store(true)
	for li, l := range f.loops {
		l.Post(func() {
			for idx := li; idx < len(f.conns) && f.echoing.Load(); idx += len(f.loops) {
				if c := f.conns[idx].Load(); c != nil && !c.Closed() {
					f.sendInflight(li, c, idx, f.spec.Inflight)
				}
			}
		})
	}
}

// sendInflight sends n echo requests on connection idx in one write, on loop li's
// goroutine. Each carries the next seq of the connection and the time it is written, so
// the latency is the round trip from the write to the answer.
func (f *fleet) sendInflight(li int, c *wsfleet.Conn, idx, n int) {
	if c.Closed() {
		return
	}
	b := &f.echoBufs[li]
	b.frame = b.frame[:0]
	ts := time.Now().UnixNano()
	for k := range n {
		b.frame, b.scratch = echoFrame(b.frame, b.scratch, f.sent[idx]+int64(k)+1, ts, f.spec.Size)
	}
	if err := c.Write(b.frame, 2*time.Second); err != nil {
		if !errors.Is(err, wsfleet.ErrClosed) {
			f.loops[li].Kill(c, err) // counted by closed
		}
		return
	}
	f.sent[idx] += int64(n)
	f.sentN.Add(int64(n))
	if cap(b.frame) > 64<<10 {
		b.frame = nil // a large first burst: do not keep its buffer
	}
}

// churn closes connections round robin (closing handshake) and dials a replacement for
// each, at Rate per second.
func (f *fleet) churn(ctx context.Context) {
	var dials sync.WaitGroup
	sem := make(chan struct{}, f.spec.Concurrency)
	n := len(f.conns)
	redialing := make([]atomic.Bool, n) // a replacement for that index is being dialed
	paced(ctx, f.spec.Rate, func(k int64, _ time.Time) {
		idx := int(k % int64(n))
		c := f.conns[idx].Load()
		if c == nil || redialing[idx].Load() {
			return
		}
		// Take a dial slot first: once a connection is closed, its replacement is dialed.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		redialing[idx].Store(true)
		if !c.Closed() && !c.Closing() {
			f.closing.Add(1)
			f.loopOf(idx).Shutdown(c)
		}
		dials.Go(func() {
			defer func() {
				redialing[idx].Store(false)
				<-sem
			}()
			f.redial(f.dialCtx, idx)
		})
	})
	// The load phase is over: let the replacements in flight finish, and the closing
	// handshakes, so that the fleet is whole again when it is counted.
	dials.Wait()
	for deadline := time.Now().Add(3 * time.Second); f.closing.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fleet) redial(ctx context.Context, idx int) {
	i := f.spec.From + idx
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	fd, leftover, err := wsfleet.Dial(dctx, f.spec.URL, f.sources[i%len(f.sources)], f.firstMessage(i))
	if err != nil {
		if ctx.Err() == nil {
			f.dialFailed(i, err)
		}
		return
	}
	f.churnOpened.Add(1)
	_ = f.opened(wsfleet.Dialed{Index: i, FD: fd, Leftover: leftover, Took: time.Since(start)})
}

// stop ends the part's load, waits up to Drain for messages in flight (lastSeq[t] is
// the last seq published to topic t), and accounts for every connection.
func (f *fleet) stop(lastSeq []int64) partResult {
	f.endLoad()
	res := partResult{Index: f.spec.Index, PID: os.Getpid(), Conns: len(f.conns), Ready: f.readyRep}
	// expected is what connection idx should have received by now (-1: not counted).
	// A publish subscriber is owed every message of its topic whether or not its
	// subscription was confirmed in time (publishing starts after -settle) and whether or
	// not the server closed it: either way the message did not reach it.
	expected := func(idx int) int64 {
		switch {
		case f.spec.Scenario == scenarioEcho:
			return f.sent[idx]
		case f.spec.Scenario == scenarioPublish && len(lastSeq) > 0:
			return lastSeq[(f.spec.From+idx)%f.spec.Topics]
		}
		return -1
	}
	// behind returns how many messages open connections still miss.
	behind := func() (missing int64) {
		for li, l := range f.loops {
			l.Do(func() {
				for idx := li; idx < len(f.conns); idx += len(f.loops) {
					if c := f.conns[idx].Load(); c != nil && !c.Closed() {
						if e := expected(idx); e > c.Seq {
							missing += e - c.Seq
						}
					}
				}
			})
		}
		return missing
	}
	if f.spec.Scenario == scenarioEcho || f.spec.Scenario == scenarioPublish {
		deadline := time.Now().Add(f.spec.Drain)
		for behind() > 0 {
			if time.Now().After(deadline) {
				res.DrainFailed = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var latency, subscribe hist.Hist
	for li, l := range f.loops {
		l.Do(func() {
			latency.Merge(&f.latency[li])
			subscribe.Merge(&f.subscribe[li])
			for idx := li; idx < len(f.conns); idx += len(f.loops) {
				c := f.conns[idx].Load()
				e := expected(idx)
				if c == nil || e < 0 {
					continue
				}
				// A connection the server closed owes its missing messages like an
				// open one: they did not arrive.
				missing := c.Lost + max(0, e-c.Seq)
				res.Expected += e
				res.Lost += missing
				res.Dup += c.Dup
				if f.spec.Scenario == scenarioEcho {
					res.Unanswered += missing
				}
			}
		})
	}
	res.Latency, res.Subscribe = latency, subscribe
	f.connectMu.Lock()
	res.Connect = f.connectHist
	f.connectMu.Unlock()
	res.Progress = f.progress()
	res.Errors = f.errs.snapshot()
	res.ServerClosedBy = f.closedBy.snapshot()
	res.RSSBytes, _ = proc.RSS(0)
	user, sys := srvstats.CPUSelf()
	res.CPUNs = user + sys
	res.NOFILESoft, res.NOFILEHard, _ = proc.NOFILE()
	return res
}

// endLoad stops the part's own load: no request is sent once it returns (a closed-loop
// answer being handled as it is called may still send its replacement, counted in sent
// on its loop goroutine before any later Loop.Do runs).
func (f *fleet) endLoad() {
	f.echoing.Store(false)
	if f.loadCancel != nil {
		f.loadCancel()
	}
	f.loadDone.Wait()
}

// mark reads the part's counters now.
func (f *fleet) mark() mark {
	user, sys := srvstats.CPUSelf()
	return mark{Deliveries: f.deliveries.Load(), CPUNs: user + sys}
}

// close closes every connection and stops the loops.
func (f *fleet) close() {
	f.dialCancel()
	f.endLoad()
	for _, l := range f.loops {
		l.Stop()
	}
	f.running.Wait()
	for _, l := range f.loops {
		l.CloseAll()
	}
}
