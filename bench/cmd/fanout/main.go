// Command fanout measures topic fan-out: one publisher, S subscribers of
// topic "fan", every message delivered to all of them.
//
// For each implementation it builds and starts the benchmark server app
// (bench/servers/<impl>) and a client process (this binary, -role client)
// that holds the S subscribers and the publisher connection. The publisher
// sends {"topic":"publish","data":{"topic":"fan","data":{"seq":N,"ts":...,"pad":...}}},
// sized so the delivered frame is about -frame bytes. Closed loop (default):
// message N+W is sent once all subscribers have received message N
// (W = -window). Open loop (-rate R): R messages per second.
//
// After -warmup it measures for -duration: deliveries per second, lost and
// repeated messages (each subscriber must see every seq once, in order),
// publish-to-receive latency percentiles, and the server's CPU time
// (utime+stime from /proc/<pid>/stat) per delivery. The client's CPU is
// reported too.
//
// The floor (-floor, on by default) is the same pattern without WebSocket:
// a writer process holds S raw loopback TCP connections to a sink process and
// writes one -frame-byte buffer to each per round; its CPU time per write()
// is the kernel's cost of one small loopback write, a lower bound for the
// server's CPU per delivery.
//
// With -compress the subscribers negotiate permessage-deflate; the results add the
// bytes each delivery took on the wire and how many arrived compressed.
//
// With -tls the server app serves wss:// (its -cert and -key: a self-signed ECDSA P-256
// certificate made at start, served each library's own way, bench/README.md) and the
// subscribers and the publisher dial it with crypto/tls (TLS 1.3, ALPN http/1.1) through
// internal/tlsfleet, whose connections each have a reader goroutine in the client
// process. The same figures are taken as over ws://: the server's CPU per delivery, the
// latency, and every loss and closed subscriber counted. Only the server's CPU per
// delivery (and its wss/ws ratio) compares with ws://: the client's TLS readers, a
// goroutine and a decrypt per subscriber on the same cores, hold down deliveries/s and
// set much of the latency. The floor stays raw TCP.
package main

import (
	"flag"
	"log"
	"os"
	"time"

	"github.com/livepoll/livepoll/internal/proc"
)

var (
	impls    = flag.String("impl", "livepoll,mizu", "comma-separated server apps (bench/servers/<impl>), run in turn")
	subs     = flag.Int("subs", 10000, "subscribers (at most ~18000: one process holds 20k fds)")
	window   = flag.Int("window", 1, "closed loop: messages in flight")
	rate     = flag.Float64("rate", 0, "open loop: messages per second (0: closed loop)")
	duration = flag.Duration("duration", 10*time.Second, "measured time per implementation")
	warmup   = flag.Duration("warmup", 2*time.Second, "unmeasured time before -duration")
	frame    = flag.Int("frame", 100, "size in bytes of the delivered frame (and of a floor write)")
	floor    = flag.Bool("floor", true, "also measure the raw TCP floor")
	jsonOut  = flag.String("json", "", "also write the results as JSON to this file")
	dialRate = flag.Int("dial-rate", 4000, "new connections per second at most")
	dialConc = flag.Int("dial-conc", 200, "handshakes in flight at once")
	timeout  = flag.Duration("timeout", 10*time.Minute, "the whole run stops after this long")
	compress = flag.Bool("compress", false, "run the server apps with -compress and have every subscriber offer permessage-deflate (not mizu, which does not compress)")
	useTLS   = flag.Bool("tls", false, "serve wss:// (each server app with -cert and -key, a self-signed ECDSA P-256 certificate made at start) and subscribe and publish over it with crypto/tls clients")

	role      = flag.String("role", "", "internal: client, sink or writer (child processes)")
	addrFlag  = flag.String("addr", "", "internal: server address (client), data address (sink, writer)")
	ctlAddr   = flag.String("ctl", "", "internal: floor control address (sink, writer)")
	statsAddr = flag.String("stats-addr", "", "internal: the server's plain /stats address (client)")
	caFile    = flag.String("ca", "", "internal: the certificate the wss:// clients trust (client)")
)

func main() {
	flag.Parse()
	if _, err := proc.RaiseNOFILE(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	time.AfterFunc(*timeout, func() {
		log.Printf("fanout %s: -timeout %v reached, exiting", *role, *timeout)
		os.Exit(2) // children die with us (PDEATHSIG)
	})
	var err error
	switch *role {
	case "":
		err = run()
	case "client":
		err = runClient()
	case "sink":
		err = runSink()
	case "writer":
		err = runWriter()
	default:
		log.Fatalf("unknown -role %q", *role)
	}
	if err != nil {
		log.Fatalf("fanout %s: %v", *role, err)
	}
}
