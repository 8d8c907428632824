//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/livepoll/livepoll/internal/hist"
	"github.com/livepoll/livepoll/internal/kmem"
	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

// Hidden roles: loadgen re-executes itself as its own server and as worker processes.
const (
	roleFlag   = "-internal-role="
	roleServer = "server"
	roleWorker = "worker"
)

// childRole returns the role os.Args asks for, or "".
func childRole(args []string) string {
	if len(args) == 2 && len(args[1]) > len(roleFlag) && args[1][:len(roleFlag)] == roleFlag {
		return args[1][len(roleFlag):]
	}
	return ""
}

// runChild runs a child role and returns the exit status.
func runChild(role string) int {
	var err error
	switch role {
	case roleServer:
		err = runServer(os.Stdin, os.Stdout)
	case roleWorker:
		err = runWorker(os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", role, err)
		return 1
	}
	return 0
}

// fdMargin is how many descriptors a process keeps for things other than its
// connections: two per handshake in flight (the socket and its dup), the epoll and
// eventfd descriptors, pipes, /proc reads, the stats client.
func fdMargin(concurrency int) int { return 2*concurrency + 64 }

// run is the coordinator: it starts the server (unless -url), the parts, runs the
// scenario and returns the report. Progress goes to stderr.
func run(ctx context.Context, cfg config, stderr io.Writer) (*report, error) {
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "loadgen: "+format+"\n", args...) }

	r := &report{
		Scenario: cfg.Scenario,
		Settings: settings{Conns: cfg.Conns, Topics: cfg.Topics, Rate: cfg.Rate, DurationSec: cfg.Duration.Seconds(),
			ConnectRate: cfg.ConnectRate, Concurrency: cfg.Concurrency, Size: cfg.Size, Inflight: cfg.Inflight},
		Errors:      map[string]errorCount{},
		Connections: connReport{ServerClosedBy: map[string]int64{}},
	}
	publishers := 0
	if cfg.Scenario == scenarioPublish {
		publishers = cfg.Publishers
		r.Settings.Publishers = publishers
	}
	lim, err := readLimits()
	if err != nil {
		return nil, err
	}
	r.Limits = lim
	r.Limits.Notes = []string{}
	perProc := cfg.PerProc
	if perProc == 0 {
		perProc = int(lim.NOFILESoft) - fdMargin(cfg.Concurrency) - publishers
		if perProc < 1 {
			return nil, fmt.Errorf("RLIMIT_NOFILE is %d: too low for even one connection with -concurrency %d; raise it (ulimit -n, see docs/tuning.md)", lim.NOFILESoft, cfg.Concurrency)
		}
	}
	r.Limits.PerProcess = perProc
	r.Settings.PerProc = perProc
	nparts := (cfg.Conns + perProc - 1) / perProc
	r.Processes = nparts
	if nparts > 1 {
		why := fmt.Sprintf("-per-proc %d", perProc)
		if cfg.PerProc == 0 {
			why = fmt.Sprintf("RLIMIT_NOFILE %d minus %d kept free", lim.NOFILESoft, fdMargin(cfg.Concurrency)+publishers)
		}
		r.Limits.Notes = append(r.Limits.Notes, fmt.Sprintf(
			"one process holds at most %d connections (%s), so the %d connections are spread over %d processes; to use fewer, raise the hard limit (ulimit -Hn as root, /etc/security/limits.conf, systemd LimitNOFILE; fs.nr_open = %d caps it)",
			perProc, why, cfg.Conns, nparts, lim.NrOpen))
	}

	// The server.
	target, statsURL := cfg.URL, cfg.StatsURL
	if target == "" {
		r.SelfStartedServer = true
		spec := serverSpec{ExitAfter: cfg.Timeout + 30*time.Second}
		if cfg.HeapProfile != "" {
			spec.MemProfileRate = 4 << 10
		}
		srv, err := startServer(self, spec, stderr)
		if err != nil {
			return nil, err
		}
		defer srv.stop()
		r.Limits.ServerNOFILE = srv.hello.NOFILESoft
		need := cfg.Conns + publishers + cfg.Abuse.total() + 64
		if uint64(need) > srv.hello.NOFILESoft {
			return nil, fmt.Errorf("loadgen's own server can hold about %d connections (its RLIMIT_NOFILE is %d, hard %d), fewer than the %d asked for: raise the hard limit for the shell that runs loadgen (ulimit -Hn %d as root; /etc/security/limits.conf; systemd LimitNOFILE; fs.nr_open = %d caps it; see docs/tuning.md), or point -url at a server that can",
				int(srv.hello.NOFILESoft)-64-publishers, srv.hello.NOFILESoft, srv.hello.NOFILEHard, cfg.Conns, need, lim.NrOpen)
		}
		target = "ws://" + srv.hello.Addr + "/ws"
		statsURL = "http://" + srv.hello.Addr + "/stats"
	} else if statsURL == "" {
		statsURL = statsURLFor(target)
	}
	heapURL := cfg.PprofURL
	switch {
	case heapURL != "":
	case statsURL != "" && statsURL != "none":
		heapURL = pprofURLFor(statsURL)
	default:
		heapURL = pprofURLFor(target)
	}
	if statsURL == "none" {
		statsURL = ""
		r.ServerSkipped = "-stats none"
	}
	r.Target = target

	// Source addresses.
	sources := cfg.Sources
	if sources == nil {
		if r.SelfStartedServer || isLoopback(target) {
			sources = wsfleet.LoopbackSources(max(8, (cfg.Conns+24999)/25000))
		} else {
			sources = []net.IP{nil}
		}
	}
	for _, s := range sources {
		if s == nil {
			r.Sources = append(r.Sources, "")
		} else {
			r.Sources = append(r.Sources, s.String())
		}
	}
	if ports := lim.PortRange[1] - lim.PortRange[0] + 1; ports > 0 {
		if per := (cfg.Conns + len(sources) - 1) / len(sources); per > ports*9/10 {
			r.Limits.Notes = append(r.Limits.Notes, fmt.Sprintf(
				"%d connections per source address to one server address come close to the %d ephemeral ports (net.ipv4.ip_local_port_range %d-%d): add source addresses (-src) or widen the range",
				per, ports, lim.PortRange[0], lim.PortRange[1]))
		}
	}

	// The kernel's and the server's figures before the fleet.
	kbefore, kerr := kmem.Read()
	if kerr != nil {
		r.KernelSkipped = kerr.Error()
	}
	net0, nerr := kmem.ReadNet()
	if nerr != nil {
		r.NetworkSkipped = nerr.Error()
	}
	var net1 kmem.Net
	var before srvstats.Snapshot
	if statsURL != "" {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		before, err = srvstats.Fetch(sctx, statsURL, true)
		scancel()
		if err != nil {
			if r.SelfStartedServer {
				return nil, fmt.Errorf("own server's /stats: %w", err)
			}
			r.ServerSkipped = fmt.Sprintf("%s did not answer (%v); -stats URL names it", statsURL, err)
			statsURL = ""
		}
	}

	logf("%s: %d connections to %s, %d process(es) of at most %d connections, source addresses %s",
		cfg.Scenario, cfg.Conns, target, nparts, perProc, describeSources(r.Sources))
	for _, n := range r.Limits.Notes {
		logf("limit: %s", n)
	}

	// The parts.
	specs := splitParts(cfg, target, r.Sources, nparts)
	parts := make([]part, 0, nparts)
	closeParts := func() {
		var wg sync.WaitGroup
		for _, p := range parts {
			wg.Go(p.close)
		}
		wg.Wait()
	}
	defer func() { closeParts() }()
	local, err := startLocal(specs[0])
	if err != nil {
		return nil, err
	}
	parts = append(parts, local)
	for _, spec := range specs[1:] {
		w, err := startWorker(self, spec, stderr)
		if err != nil {
			return nil, err
		}
		parts = append(parts, w)
	}

	prog := startProgress(cfg, parts, statsURL, stderr)
	defer prog.stop()

	readies := make([]readyReport, len(parts))
	if err := forEachPart(parts, func(i int, p part) error {
		rep, err := p.waitReady(ctx)
		readies[i] = rep
		return err
	}); err != nil {
		return nil, err
	}
	var connectSecs float64
	for _, rd := range readies {
		r.Connections.Reached += rd.Progress.Connected
		r.Connections.Ready += rd.Progress.Ready
		connectSecs = max(connectSecs, rd.DialSeconds)
	}
	r.Connections.Requested = cfg.Conns
	r.Connections.Seconds = connectSecs
	if connectSecs > 0 {
		r.Connections.RatePerSec = float64(r.Connections.Reached) / connectSecs
	}
	prog.setPhase("connected")

	// Publishers connect after the fleet, so they hold no subscription and their
	// messages start once every subscriber is in place.
	var pub *publisher
	if publishers > 0 {
		pub = &publisher{loop: local.f.loops[0], topics: cfg.Topics, rate: cfg.Rate, size: cfg.Size}
		for k := range publishers {
			fd, leftover, err := wsfleet.Dial(ctx, target, sources[k%len(sources)], nil)
			if err != nil {
				return nil, fmt.Errorf("publisher connection: %w", err)
			}
			c := &wsfleet.Conn{FD: fd, ID: -1 - k}
			if err := pub.loop.Add(c, leftover); err != nil {
				return nil, fmt.Errorf("publisher connection: %w", err)
			}
			pub.conns = append(pub.conns, c)
		}
	}

	// Once the fleet is up: the kernel's and the server's figures and loadgen's own
	// memory. The server holds the publishers' connections too.
	open := openConns(parts, pub, publishers)
	if nerr == nil {
		if net1, nerr = kmem.ReadNet(); nerr != nil {
			r.NetworkSkipped = nerr.Error()
		}
	}
	if kerr == nil {
		r.Kernel, r.KernelSkipped = kernelAfter(kbefore, open, r.SelfStartedServer || isLoopback(target))
	}
	if statsURL != "" {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		after, err := srvstats.Fetch(sctx, statsURL, true)
		scancel()
		if err != nil {
			r.ServerSkipped = fmt.Sprintf("%s did not answer once the fleet was up: %v", statsURL, err)
		} else {
			r.Server = &serverReport{StatsURL: statsURL, Before: before, After: after, Conns: open}
			if open > 0 {
				n := float64(open)
				r.Server.PerConn = perConn{
					RSSBytes:   (float64(after.RSSBytes) - float64(before.RSSBytes)) / n,
					HeapBytes:  (float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)) / n,
					Goroutines: float64(after.Goroutines-before.Goroutines) / n,
					FDs:        float64(after.FDs-before.FDs) / n,
				}
			}
		}
	}
	rssAfterConnect := partRSS(parts)

	// The load phase; abuse's hostile clients connect first and run beside it.
	var ab *abusePhase
	if cfg.Scenario == scenarioAbuse {
		if ab, err = startAbusePhase(ctx, cfg, target, sources, statsURL); err != nil {
			return nil, err
		}
		defer ab.close()
	}
	prog.setPhase(cfg.Scenario)
	cpuStart := readCPU(ctx, parts, statsURL)
	loadStart := time.Now()
	for _, p := range parts {
		if err := p.startLoad(); err != nil {
			return nil, err
		}
	}
	lctx, lcancel := context.WithTimeout(ctx, cfg.Duration)
	if pub != nil {
		pub.run(lctx)
	} else {
		<-lctx.Done()
	}
	lcancel()
	loadSecs := time.Since(loadStart).Seconds()
	cpuEnd := readCPU(ctx, parts, statsURL)
	if nerr == nil {
		if net2, err := kmem.ReadNet(); err != nil {
			r.NetworkSkipped = err.Error()
		} else {
			r.Network = &networkReport{Connect: net1.Sub(net0), Load: net2.Sub(net1)}
		}
	}

	if ctx.Err() != nil {
		return nil, fmt.Errorf("-timeout %v reached during the load phase", cfg.Timeout)
	}
	rssEnd := partRSS(parts)
	pssEnd := partPSS(parts)
	if cfg.HeapProfile != "" {
		r.HeapProfile, err = fetchHeapProfile(ctx, heapURL, cfg.HeapProfile, openConns(parts, pub, publishers), heapTop)
		if err != nil {
			r.HeapProfileError = err.Error()
		}
	}

	prog.setPhase("draining")
	var lastSeq []int64
	if pub != nil {
		lastSeq = pub.lastSeq
	}
	results := make([]partResult, len(parts))
	if err := forEachPart(parts, func(i int, p part) error {
		res, err := p.stop(ctx, lastSeq)
		results[i] = res
		return err
	}); err != nil {
		return nil, err
	}
	prog.stop()
	// The abusers stopped at the end of the load phase; their fate is read once the
	// healthy clients have stopped sending too.
	if ab != nil {
		r.Abuse = ab.finish(ctx)
	}

	// Aggregate.
	var total progress
	var connect, subscribe, latency hist.Hist
	load := &loadReport{Seconds: loadSecs, DrainComplete: true}
	load.setCPU(cpuStart, cpuEnd, statsURL, r.ServerSkipped)
	for i, res := range results {
		total.add(res.Progress)
		connect.Merge(&res.Connect)
		subscribe.Merge(&res.Subscribe)
		latency.Merge(&res.Latency)
		load.Expected += res.Expected
		load.Lost += res.Lost
		load.Unanswered += res.Unanswered
		mergeCounts(r.Connections.ServerClosedBy, res.ServerClosedBy)
		load.Dup += res.Dup
		load.DrainComplete = load.DrainComplete && !res.DrainFailed
		mergeErrors(r.Errors, res.Errors)
		role := "worker"
		if i == 0 {
			role = "coordinator"
		}
		pr := procReport{Role: role, PID: res.PID, Conns: res.Conns, RSSAfterConnect: rssAfterConnect[i], RSSEnd: rssEnd[i], PSSEnd: pssEnd[i],
			CPUSeconds: float64(res.CPUNs) / 1e9, NOFILESoft: res.NOFILESoft, NOFILEHard: res.NOFILEHard}
		r.Loadgen.Processes = append(r.Loadgen.Processes, pr)
		r.Loadgen.RSSBytes += pr.RSSEnd
		r.Loadgen.RSSAfterConnectBytes += pr.RSSAfterConnect
		r.Loadgen.PSSBytes += pr.PSSEnd
		r.Loadgen.CPUSeconds += pr.CPUSeconds
	}
	r.Connections.Failed = total.Failed
	r.Connections.OpenAtEnd = total.Open
	r.Connections.ServerClosed = total.ServerClosed
	r.Connections.Handshake = percentilesOf(&connect)
	if subscribe.Count() > 0 {
		p := percentilesOf(&subscribe)
		r.Connections.Subscribe = &p
	}
	switch cfg.Scenario {
	case scenarioPublish, scenarioEcho, scenarioAbuse:
		load.Deliveries = total.Deliveries
		load.DeliveriesPerSec = float64(total.Deliveries) / loadSecs
		p := percentilesOf(&latency)
		load.Latency = &p
		if pub != nil {
			load.Published = pub.published
		}
		load.Sent = total.Sent
	case scenarioChurn:
		load.ChurnClosed = total.ChurnClosed
		load.ChurnOpened = total.ChurnOpened
	}
	r.Load = load
	r.Seconds = time.Since(started).Seconds()
	return r, nil
}

// heapTop is how many allocation sites the report lists.
const heapTop = 10

// openConns counts loadgen's connections open now, publishers included (the server
// holds them too).
func openConns(parts []part, pub *publisher, publishers int) int64 {
	open := int64(publishers - closedPublishers(pub))
	for _, p := range parts {
		open += p.progress().Open
	}
	return open
}

func closedPublishers(p *publisher) int {
	if p == nil {
		return 0
	}
	n := 0
	for _, c := range p.conns {
		if c.Closed() {
			n++
		}
	}
	return n
}

// splitParts divides the connections into nparts nearly equal parts; part 0 is the
// coordinator's.
func splitParts(cfg config, target string, sources []string, nparts int) []partSpec {
	specs := make([]partSpec, nparts)
	from := 0
	for i := range specs {
		n := cfg.Conns / nparts
		if i < cfg.Conns%nparts {
			n++
		}
		share := float64(n) / float64(cfg.Conns)
		specs[i] = partSpec{
			Index: i, URL: target, From: from, To: from + n,
			Scenario: partScenario(cfg.Scenario), Topics: cfg.Topics,
			Rate:        cfg.Rate * share,
			Inflight:    cfg.Inflight,
			ConnectRate: max(1, int(float64(cfg.ConnectRate)*share)),
			Concurrency: cfg.Concurrency, Sources: sources, Size: cfg.Size,
			Settle: cfg.Settle, Drain: cfg.Drain, Timeout: cfg.Timeout + 30*time.Second,
		}
		from += n
	}
	return specs
}

// partScenario is what the fleet runs for a scenario: abuse's healthy clients echo.
func partScenario(s string) string {
	if s == scenarioAbuse {
		return scenarioEcho
	}
	return s
}

// forEachPart calls fn for every part at once and returns the errors.
func forEachPart(parts []part, fn func(i int, p part) error) error {
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() { errs[i] = fn(i, p) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// partRSS reads the resident set of every part's process.
func partRSS(parts []part) []uint64 {
	out := make([]uint64, len(parts))
	for i, p := range parts {
		out[i], _ = proc.RSS(p.pid())
	}
	return out
}

// partPSS reads the proportional set size of every part's process.
func partPSS(parts []part) []uint64 {
	out := make([]uint64, len(parts))
	for i, p := range parts {
		out[i], _ = proc.PSS(p.pid())
	}
	return out
}

// readLimits reads the descriptor and port limits.
func readLimits() (limitsReport, error) {
	var l limitsReport
	if _, err := proc.RaiseNOFILE(); err != nil {
		return l, fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	var err error
	if l.NOFILESoft, l.NOFILEHard, err = proc.NOFILE(); err != nil {
		return l, err
	}
	l.NrOpen, _ = proc.NrOpen()
	l.PortRange[0], l.PortRange[1], _ = proc.PortRange()
	return l, nil
}
