//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

// The abuse scenario runs the fleet as echo (the healthy clients: latency and losses
// measured as usual) beside hostile clients of five kinds, each on its own connections:
//
//	flooders     stream -flood-size echo requests as fast as the socket takes them, and
//	             read the answers (issue 10: one flooder per worker starves the others)
//	nonreaders   send -nonreader-size echo requests the server answers, and never read
//	             (the server must bound what it queues for them)
//	slowreaders  ask for a 16 KiB echo every 50 ms and read -slow-read-rate bytes/s
//	churners     connect, subscribe and close, in a loop
//	pingflood    send 125-byte pings as fast as the socket takes them (reading the pongs)
//
// Each abuser's fate is read at the end: whether the server closed it and why
// (wsfleet.Reason), or whether it is still open. nonreaders' and slowreaders' sockets
// are read to the end then (what the server had queued is bytes_drained), since a close
// frame waits behind the data they did not read.

// abuseConfig is the abuse scenario's hostile clients.
type abuseConfig struct {
	Flooders, NonReaders, SlowReaders, Churners, PingFlood int
	FloodSize, NonReaderSize, SlowReadRate                 int
}

func (a *abuseConfig) flags(fs *flag.FlagSet) {
	fs.IntVar(&a.Flooders, "flooders", 0, "abuse: connections streaming -flood-size echo requests as fast as the socket takes them (reading the answers)")
	fs.IntVar(&a.FloodSize, "flood-size", 64<<10, "abuse: bytes of a flooder's message")
	fs.IntVar(&a.NonReaders, "nonreaders", 0, "abuse: connections sending -nonreader-size echo requests and never reading")
	fs.IntVar(&a.NonReaderSize, "nonreader-size", 1<<20, "abuse: bytes of a non-reader's message")
	fs.IntVar(&a.SlowReaders, "slowreaders", 0, "abuse: connections asking for a 16 KiB echo every 50 ms and reading -slow-read-rate bytes/s")
	fs.IntVar(&a.SlowReadRate, "slow-read-rate", 4<<10, "abuse: bytes per second a slow reader reads")
	fs.IntVar(&a.Churners, "churners", 0, "abuse: clients connecting, subscribing and closing in a loop")
	fs.IntVar(&a.PingFlood, "pingflood", 0, "abuse: connections sending pings as fast as the socket takes them")
}

func (a abuseConfig) total() int {
	return a.Flooders + a.NonReaders + a.SlowReaders + a.Churners + a.PingFlood
}

func (a abuseConfig) check(scenario string) error {
	if a.Flooders < 0 || a.NonReaders < 0 || a.SlowReaders < 0 || a.Churners < 0 || a.PingFlood < 0 {
		return errors.New("-flooders, -nonreaders, -slowreaders, -churners and -pingflood must not be negative")
	}
	if a.FloodSize <= 0 || a.NonReaderSize <= 0 || a.SlowReadRate <= 0 {
		return errors.New("-flood-size, -nonreader-size and -slow-read-rate must be positive")
	}
	if scenario != scenarioAbuse && a.total() > 0 {
		return errors.New("-flooders, -nonreaders, -slowreaders, -churners and -pingflood need -scenario abuse")
	}
	return nil
}

// Abuser kinds, in report order.
const (
	kindFlooder    = "flooders"
	kindNonReader  = "nonreaders"
	kindSlowReader = "slowreaders"
	kindChurner    = "churners"
	kindPingFlood  = "pingflood"
)

// abuser is one hostile connection.
type abuser struct {
	kind    string
	c       *wsfleet.Conn
	sent    atomic.Int64
	blocked atomic.Bool // its last write was still waiting when the run ended

	// Raw kinds (nonreaders, slowreaders) only, until the final drain: what the slow
	// reader read (parsed by the loop at the drain), and the first error the socket gave
	// (guarded by mu: the writer and the slow reading both set it).
	kept     []byte
	received int64
	mu       sync.Mutex
	earlyErr error
}

// abuse runs the hostile clients of a run.
type abuse struct {
	cfg     abuseConfig
	url     string
	sources []net.IP
	loop    *wsfleet.Loop
	running sync.WaitGroup // the loop
	workers sync.WaitGroup // writers, the slow reading, churners

	abusers []*abuser
	churn   struct {
		mu     sync.Mutex
		cycles int64
		sent   int64
		failed map[string]int64
	}
	dialFailed map[string]map[string]int64 // by kind, by error kind: abusers that never connected
	closeOnce  sync.Once
}

// startAbuse dials the abusers and starts them; they run until end (and stop when ctx
// is done).
func startAbuse(ctx context.Context, cfg abuseConfig, url string, sources []net.IP, end time.Time) (*abuse, error) {
	a := &abuse{cfg: cfg, url: url, sources: sources, dialFailed: map[string]map[string]int64{}}
	a.churn.failed = map[string]int64{}
	loop, err := wsfleet.NewLoop(1<<20, nil)
	if err != nil {
		return nil, err
	}
	a.loop = loop
	a.running.Go(loop.Run)
	for _, k := range []struct {
		kind string
		n    int
	}{{kindFlooder, cfg.Flooders}, {kindNonReader, cfg.NonReaders}, {kindSlowReader, cfg.SlowReaders}, {kindPingFlood, cfg.PingFlood}} {
		for i := range k.n {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			fd, leftover, err := wsfleet.Dial(dctx, url, sources[(len(a.abusers)+i)%len(sources)], nil)
			cancel()
			if err != nil {
				if a.dialFailed[k.kind] == nil {
					a.dialFailed[k.kind] = map[string]int64{}
				}
				a.dialFailed[k.kind][errorKind(err)]++
				continue
			}
			ab := &abuser{kind: k.kind, c: &wsfleet.Conn{FD: fd, ID: -1}}
			if k.kind == kindFlooder || k.kind == kindPingFlood {
				if err := loop.Add(ab.c, leftover); err != nil {
					a.close()
					return nil, err
				}
			} else {
				ab.kept = leftover
			}
			a.abusers = append(a.abusers, ab)
		}
	}
	a.start(ctx, end)
	return a, nil
}

func (a *abuse) start(ctx context.Context, end time.Time) {
	ctx, cancel := context.WithDeadline(ctx, end)
	flood := abuseEcho(a.cfg.FloodSize)
	big := abuseEcho(a.cfg.NonReaderSize)
	small := abuseEcho(16 << 10)
	var pings []byte
	for range 64 {
		pings = wsfleet.AppendClientFrame(pings, ws.OpPing, make([]byte, 125))
	}
	var slow []*abuser
	for _, ab := range a.abusers {
		switch ab.kind {
		case kindFlooder:
			a.workers.Go(func() { a.stream(ctx, ab, flood, end) })
		case kindPingFlood:
			a.workers.Go(func() { a.stream(ctx, ab, pings, end) })
		case kindNonReader:
			a.workers.Go(func() { a.rawStream(ctx, ab, big, end, 0) })
		case kindSlowReader:
			a.workers.Go(func() { a.rawStream(ctx, ab, small, end, 50*time.Millisecond) })
			slow = append(slow, ab)
		}
	}
	if len(slow) > 0 {
		a.workers.Go(func() { a.readSlowly(ctx, slow) })
	}
	for i := range a.cfg.Churners {
		a.workers.Go(func() { a.churnLoop(ctx, i) })
	}
	a.workers.Go(func() {
		<-ctx.Done()
		cancel()
	})
}

// finish stops the abusers, reads the raw ones' sockets to learn their fate, and returns
// the report. The abusers are closed afterwards (close).
func (a *abuse) finish() map[string]*abuserReport {
	a.workers.Wait()
	// The raw abusers go to the loop now: it parses what the slow readers kept, reads
	// what the server queued, answers its pings and sees its close.
	var raw []*abuser
	for _, ab := range a.abusers {
		if ab.kind == kindNonReader || ab.kind == kindSlowReader {
			if err := a.loop.Add(ab.c, ab.kept); err != nil {
				a.setEarly(ab, err)
			}
			ab.kept = nil
			raw = append(raw, ab)
		}
	}
	// Drain until every raw abuser is closed or nothing more arrives for 300 ms (3 s at
	// most).
	deadline := time.Now().Add(3 * time.Second)
	var last int64 = -1
	quietSince := time.Now()
	for time.Now().Before(deadline) {
		open, total := 0, int64(0)
		for _, ab := range raw {
			total += ab.c.BytesIn.Load()
			if !ab.c.Closed() {
				open++
			}
		}
		if open == 0 {
			break
		}
		if total != last {
			last, quietSince = total, time.Now()
		} else if time.Since(quietSince) > 300*time.Millisecond {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := map[string]*abuserReport{}
	get := func(kind string) *abuserReport {
		r := out[kind]
		if r == nil {
			r = &abuserReport{ClosedBy: map[string]int64{}}
			out[kind] = r
		}
		return r
	}
	for kind, n := range map[string]int{kindFlooder: a.cfg.Flooders, kindNonReader: a.cfg.NonReaders, kindSlowReader: a.cfg.SlowReaders, kindPingFlood: a.cfg.PingFlood} {
		if n > 0 {
			get(kind).Count = n
		}
	}
	for kind, m := range a.dialFailed {
		r := get(kind)
		r.DialFailed = m
		for _, n := range m {
			r.NeverConnected += n
		}
	}
	for _, ab := range a.abusers {
		r := get(ab.kind)
		r.BytesSent += ab.sent.Load()
		if ab.blocked.Load() {
			r.WritesBlocked++
		}
		raw := ab.kind == kindNonReader || ab.kind == kindSlowReader
		if raw {
			r.BytesReceived += ab.received
			r.BytesDrained += ab.c.BytesIn.Load()
		} else {
			r.BytesReceived += ab.c.BytesIn.Load()
		}
		if !ab.c.Closed() {
			r.OpenAtEnd++
			continue
		}
		reason := wsfleet.Reason(ab.c.Err())
		// The loop met the socket late: a reset or write failure found during the run
		// says more than the EOF it may read now. A close frame says most.
		if early := a.early(ab); raw && early != nil && (reason == "eof" || reason == "other" || reason == "") {
			reason = wsfleet.Reason(early)
		}
		r.ClosedBy[reason]++
	}
	if a.cfg.Churners > 0 {
		r := get(kindChurner)
		a.churn.mu.Lock()
		r.Count, r.Cycles, r.BytesSent = a.cfg.Churners, a.churn.cycles, a.churn.sent
		if len(a.churn.failed) > 0 {
			r.DialFailed = a.churn.failed
		}
		a.churn.mu.Unlock()
	}
	return out
}

// close closes every abuser still open and stops the loop. It may be called again.
func (a *abuse) close() { a.closeOnce.Do(a.closeNow) }

func (a *abuse) closeNow() {
	a.workers.Wait()
	a.loop.Stop()
	a.running.Wait()
	a.loop.CloseAll()
	for _, ab := range a.abusers {
		if !ab.c.Closed() && (ab.kind == kindNonReader || ab.kind == kindSlowReader) {
			syscall.Close(ab.c.FD) // never handed to the loop (finish not called)
		}
	}
}
