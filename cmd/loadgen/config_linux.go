//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Scenarios.
const (
	scenarioIdle      = "idle"      // connect and hold
	scenarioSubscribe = "subscribe" // connect, subscribe, hold
	scenarioPublish   = "publish"   // connect, subscribe, publish at -rate, measure delivery
	scenarioEcho      = "echo"      // connect, echo round trips at -rate
	scenarioChurn     = "churn"     // connect, subscribe; close and reopen -rate connections per second
	scenarioAbuse     = "abuse"     // echo at -rate on the fleet beside hostile clients (-flooders, …)
)

// config is a run's settings, from the flags.
type config struct {
	URL         string        // target; "" starts loadgen's own server
	StatsURL    string        // the target's /stats; "" derives it from URL, "none" skips it
	Conns       int           // subscriber / client connections
	Scenario    string        // one of the scenario constants
	Topics      int           // topics the connections are spread over
	Rate        float64       // publish: messages/s; echo: round trips/s; churn: reconnects/s
	Inflight    int           // echo: requests each connection keeps in flight (closed loop); 0: open loop at Rate
	Duration    time.Duration // load phase (hold, publish, echo, churn)
	ConnectRate int           // new connections per second, all processes together
	Concurrency int           // handshakes in flight per process
	Sources     []net.IP      // source addresses; nil entry: the kernel picks
	Size        int           // bytes of a delivered publish or echo message
	Publishers  int           // publish: publisher connections
	PerProc     int           // connections per process; 0: from RLIMIT_NOFILE
	Drain       time.Duration // how long to wait for messages in flight after the load phase
	Settle      time.Duration // how long to wait for subscriptions to be confirmed
	Timeout     time.Duration // the whole run; 0: derived from the others
	JSON        string        // report file
	Progress    time.Duration // progress line interval; 0: none
	HeapProfile string        // where to write the server's heap profile; "": none
	Abuse       abuseConfig   // abuse: the hostile clients
	PprofURL    string        // the server's heap profile URL; "": derived

	srcFlag string
}

// defaultRate is -rate's meaning and default per scenario.
var defaultRate = map[string]float64{scenarioPublish: 200, scenarioEcho: 2000, scenarioChurn: 200, scenarioAbuse: 200}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "url", "", "target `ws://host:port/path` speaking the live envelope and bench/servers' app protocol; empty: start loadgen's own livepoll server")
	fs.StringVar(&c.StatsURL, "stats", "", "the target's /stats `URL` for server figures; default: same host, /stats; \"none\": skip")
	fs.IntVar(&c.Conns, "conns", 1000, "connections to open")
	fs.StringVar(&c.Scenario, "scenario", scenarioPublish, "idle, subscribe, publish, echo, churn or abuse")
	fs.IntVar(&c.Topics, "topics", 100, "topics the connections subscribe to, connection i to topic i%topics (fan-in conns/topics per topic)")
	fs.Float64Var(&c.Rate, "rate", 0, "publish: messages/s over all topics (default 200); echo: round trips/s over all connections (default 2000); churn: reconnects/s (default 200); abuse: the healthy fleet's round trips/s (default 200)")
	fs.IntVar(&c.Inflight, "inflight", 0, "echo only: closed loop, each connection keeps `N` echo requests in flight (sends N when the load phase starts and one more per answer); -rate is then ignored. 0: open loop at -rate")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of the load phase (the hold, for idle and subscribe)")
	fs.IntVar(&c.ConnectRate, "connect-rate", 4000, "new connections per second at most, all processes together")
	fs.IntVar(&c.Concurrency, "concurrency", 200, "handshakes in flight at once, per process")
	fs.StringVar(&c.srcFlag, "src", "", "source addresses: comma-separated IPv4 addresses or ranges a-b, or \"none\" (the kernel picks); default for a loopback target: 127.0.0.2 upward, 8 or one per 25k connections")
	fs.IntVar(&c.Size, "size", 100, "bytes of each delivered publish or echo message (the envelope)")
	fs.IntVar(&c.Publishers, "publishers", 1, "publish: publisher connections (topic t is published by publisher t%publishers)")
	fs.IntVar(&c.PerProc, "per-proc", 0, "connections per process; more start worker processes (default: RLIMIT_NOFILE minus a margin)")
	fs.DurationVar(&c.Drain, "drain", 3*time.Second, "after the load phase, how long to wait for messages still in flight")
	fs.DurationVar(&c.Settle, "settle", 30*time.Second, "how long to wait, after the last dial, for subscriptions to be confirmed")
	fs.DurationVar(&c.Timeout, "timeout", 0, "stop everything after this long (default: enough for the other settings plus 2 minutes)")
	fs.StringVar(&c.JSON, "json", "", "also write the report as JSON to this `file`")
	fs.DurationVar(&c.Progress, "progress", time.Second, "progress line interval on stderr (0: none)")
	fs.StringVar(&c.HeapProfile, "heap-profile", "", "at the end of the load phase, write the server's heap profile to this `file` and report its top allocation sites per connection")
	fs.StringVar(&c.PprofURL, "pprof-url", "", "the server's heap profile `URL` for -heap-profile; default: the stats URL's host, /debug/pprof/heap")
	c.Abuse.flags(fs)
}

// parseConfig reads args (without the program name).
func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: loadgen [flags]\n\nOpens -conns WebSocket connections to -url (or to its own livepoll server) and runs a\nscenario; see docs/loadgen.md.\n\n")
		fs.PrintDefaults()
	}
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.finish()
}

// finish checks the settings and fills in what depends on others.
func (c *config) finish() error {
	switch c.Scenario {
	case scenarioIdle, scenarioSubscribe, scenarioPublish, scenarioEcho, scenarioChurn, scenarioAbuse:
	default:
		return fmt.Errorf("-scenario %q: want idle, subscribe, publish, echo, churn or abuse", c.Scenario)
	}
	if err := c.Abuse.check(c.Scenario); err != nil {
		return err
	}
	if c.Conns <= 0 {
		return errors.New("-conns must be positive")
	}
	if c.Topics <= 0 {
		return errors.New("-topics must be positive")
	}
	c.Topics = min(c.Topics, c.Conns)
	if c.Rate < 0 || c.ConnectRate <= 0 || c.Concurrency <= 0 || c.Publishers <= 0 || c.Size < 0 || c.PerProc < 0 {
		return errors.New("-rate, -connect-rate, -concurrency, -publishers, -size and -per-proc must not be negative (the rates and counts positive)")
	}
	switch {
	case c.Inflight < 0:
		return errors.New("-inflight must not be negative")
	case c.Inflight > 0 && c.Scenario != scenarioEcho:
		return fmt.Errorf("-inflight is for -scenario echo only (closed-loop round trips), not %s", c.Scenario)
	case c.Inflight > 0:
		c.Rate = 0 // not paced: every answer sends the next request
	case c.Rate == 0:
		c.Rate = defaultRate[c.Scenario]
	}
	if c.Duration < 0 || c.Drain < 0 || c.Settle <= 0 {
		return errors.New("-duration and -drain must not be negative, -settle must be positive")
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || u.Scheme != "ws" || u.Host == "" {
			return fmt.Errorf("-url %q: want ws://host:port/path (wss is not supported: the fleet reads raw sockets; terminate TLS in front)", c.URL)
		}
	}
	srcs, err := parseSources(c.srcFlag)
	if err != nil {
		return err
	}
	c.Sources = srcs
	if c.Timeout == 0 {
		connect := time.Duration(float64(c.Conns) / float64(c.ConnectRate) * float64(time.Second))
		c.Timeout = 2*connect + c.Settle + c.Duration + c.Drain + 2*time.Minute
	}
	return nil
}

// parseSources reads -src; nil means "not given".
func parseSources(s string) ([]net.IP, error) {
	switch s {
	case "":
		return nil, nil
	case "none":
		return []net.IP{nil}, nil
	}
	var out []net.IP
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		a := net.ParseIP(lo).To4()
		if a == nil {
			return nil, fmt.Errorf("-src: %q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(hi).To4()
		if b == nil {
			return nil, fmt.Errorf("-src: %q is not an IPv4 address", hi)
		}
		from, to := ip4(a), ip4(b)
		if to < from || to-from >= 1<<16 {
			return nil, fmt.Errorf("-src: bad range %s", f)
		}
		for v := from; v <= to; v++ {
			out = append(out, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4())
		}
	}
	return out, nil
}

func ip4(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

// isLoopback reports whether the target host is a loopback address or localhost.
func isLoopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// statsURLFor derives the /stats address from a WebSocket URL.
func statsURLFor(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	return "http://" + u.Host + "/stats"
}
