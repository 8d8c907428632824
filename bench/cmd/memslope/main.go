// Command memslope measures the memory cost of one idle WebSocket connection.
//
// For each implementation it builds and starts the benchmark server app
// (bench/servers/<impl>), then grows a fleet of idle client connections (in a
// child process: this binary re-executed with -client-mode) in steps. Every
// connection does the handshake and sends one subscribe to "room-<i%100>".
// At each step it waits until the server's /stats counts that many sessions,
// lets the server sit idle for -quiesce, reads /stats?gc=1 three times and
// keeps the smallest RSS. The least-squares
// slope of RSS (and of heap_inuse+stack_inuse) against the connection count
// is the cost of one connection; the intercept is the baseline. The same slope of
// the host kernel's socket memory (internal/kmem: sockstat buffers and the slab
// caches that grow per socket, read after each step's samples) is the kernel's
// cost of a connection pair: the fleet runs on the same host, so both ends of each
// loopback connection are in the counters, and one end costs about half.
//
// With -compress every client negotiates permessage-deflate and has one ~2 KiB echo
// reply compressed by the server before it idles (compress.go), so the slope is that of
// an idle session with compression negotiated and used once.
//
// With -tls the server app serves wss:// (its -cert and -key: a self-signed ECDSA P-256
// certificate made at start in the temporary directory, served each library's own way,
// bench/README.md) and /stats as plain HTTP on its -stats-addr; the clients dial wss://
// with crypto/tls (TLS 1.3, ALPN http/1.1, trusting that certificate) through
// internal/tlsfleet: one reader goroutine and a tls.Conn per client connection, in the
// client process, so the server's figures are those of idle wss sessions.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/bench/internal/harness"
	"github.com/livepoll/livepoll/bench/internal/slope"
	"github.com/livepoll/livepoll/bench/internal/tlscert"
	"github.com/livepoll/livepoll/bench/internal/tlsfleet"
	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

var (
	impls      = flag.String("impl", "livepoll,mizu", "comma-separated server apps (bench/servers/<impl>), run in turn")
	sizes      = flag.String("sizes", "2000,6000,10000,14000,18000", "comma-separated connection counts (at most ~18000: one process holds 20k fds)")
	jsonOut    = flag.String("json", "", "also write the results as JSON to this file")
	rate       = flag.Int("rate", 4000, "new connections per second at most")
	conc       = flag.Int("conc", 200, "handshakes in flight at once")
	settle     = flag.Duration("settle", 60*time.Second, "how long to wait for the server to count a step's sessions")
	quiesce    = flag.Duration("quiesce", 20*time.Second, "idle time before sampling a step, so worker pools grown by the connection burst can shrink")
	timeout    = flag.Duration("timeout", 10*time.Minute, "the whole run stops after this long")
	compress   = flag.Bool("compress", false, "run the server apps with -compress; every client offers permessage-deflate, which must be accepted, and gets one ~2 KiB echo reply compressed before idling (not mizu, which does not compress)")
	useTLS     = flag.Bool("tls", false, "serve wss:// (each server app with -cert and -key, a self-signed ECDSA P-256 certificate made at start) and dial it with crypto/tls clients")
	clientMode = flag.Bool("client-mode", false, "internal: run as the client fleet child process")
	serverURL  = flag.String("url", "", "internal: the server's WebSocket URL (client mode)")
	caFile     = flag.String("ca", "", "internal: the certificate the wss:// clients trust (client mode)")
)

func main() {
	flag.Parse()
	if _, err := proc.RaiseNOFILE(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	if *clientMode {
		if err := runClient(); err != nil {
			fmt.Printf("err %v\n", err)
			os.Exit(1)
		}
		return
	}
	time.AfterFunc(*timeout, func() {
		log.Printf("memslope: -timeout %v reached, exiting", *timeout)
		os.Exit(2) // children die with us (PDEATHSIG)
	})
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

// Step is one measured connection count; its goroutines and fds are those
// of the last sample.
type Step = slope.Step[srvstats.Snapshot]

// Result is one implementation's run.
type Result struct {
	Impl string `json:"impl"`
	slope.Result[srvstats.Snapshot]
	RSSBaseline       float64 `json:"rss_baseline_bytes"`
	HeapStackBaseline float64 `json:"heap_stack_baseline_bytes"`
	// HeapProfile is the file of the server's heap profile at the largest step, beside
	// the -json file (out.json → out.<impl>.heap.pb.gz); HeapProfileError says why not.
	HeapProfile      string `json:"heap_profile,omitempty"`
	HeapProfileError string `json:"heap_profile_error,omitempty"`
	// CompressedEchoes (-compress) is how many clients negotiated permessage-deflate and
	// got their echo reply compressed: every connection of the largest step, or the run
	// fails.
	CompressedEchoes int `json:"compressed_echoes,omitempty"`
}

func run() error {
	var ns []int
	for f := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -sizes entry %q", f)
		}
		if len(ns) > 0 && n <= ns[len(ns)-1] {
			return errors.New("-sizes must increase")
		}
		ns = append(ns, n)
	}
	if *useTLS && *compress {
		return errors.New("-tls with -compress is not supported")
	}
	benchDir, err := harness.BenchDir()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "memslope-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var cert *tlscert.Files
	if *useTLS {
		_, files, err := tlscert.Make(tmp, "memslope")
		if err != nil {
			return err
		}
		cert = &files
	}

	var results []Result
	for impl := range strings.SplitSeq(*impls, ",") {
		impl = strings.TrimSpace(impl)
		if impl == "" {
			continue
		}
		log.Printf("%s: building", impl)
		r := Result{Impl: impl}
		if err := measure(benchDir, tmp, impl, ns, cert, &r); err != nil {
			r.Error = err.Error()
			log.Printf("%s: FAILED: %v", impl, err)
		}
		results = append(results, r)
	}
	printTable(os.Stdout, results, ns)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func measure(benchDir, tmp, impl string, ns []int, cert *tlscert.Files, r *Result) error {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	bin, err := harness.Build(ctx, benchDir, impl, tmp)
	if err != nil {
		return err
	}
	srv, err := harness.StartApp(bin, filepath.Join(tmp, impl+"-server.log"), *timeout, cert, *compress)
	if err != nil {
		return err
	}
	defer srv.Stop(5 * time.Second)
	fail := func(err error) error {
		return fmt.Errorf("%w\nserver stderr (tail):\n%s", err, srv.LogTail(15))
	}
	if r.Idle, err = sample(srv.StatsAddr, 0); err != nil {
		return fail(err)
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-client-mode", "-url", srv.URL(),
		"-rate", strconv.Itoa(*rate), "-conc", strconv.Itoa(*conc), "-timeout", timeout.String(),
		"-compress=" + strconv.FormatBool(*compress)}
	if cert != nil {
		args = append(args, "-tls", "-ca", cert.Cert)
	}
	client, err := harness.StartPiped(self, args, filepath.Join(tmp, impl+"-client.log"))
	if err != nil {
		return err
	}
	defer func() {
		client.Stdin.Close() // the client closes its connections and exits
		if err := client.Wait(10 * time.Second); err != nil {
			log.Printf("%s: client: %v", impl, err)
		}
	}()

	for i, n := range ns {
		start := time.Now()
		if err := slope.Grow(client, n, *rate); err != nil {
			return fail(err)
		}
		if _, err := harness.WaitSessions(srv.StatsAddr, int64(n), *settle); err != nil {
			return fail(err)
		}
		time.Sleep(*quiesce)
		st, err := sample(srv.StatsAddr, n)
		if err != nil {
			return fail(err)
		}
		r.Steps = append(r.Steps, st)
		if *compress {
			r.CompressedEchoes = n // the client checked every reply (runClient)
		}
		if i == len(ns)-1 && *jsonOut != "" {
			file := strings.TrimSuffix(*jsonOut, ".json") + "." + impl + ".heap.pb.gz"
			if err := saveHeapProfile(srv.StatsAddr, file); err != nil {
				r.HeapProfileError = err.Error()
				log.Printf("%s: heap profile: %v", impl, err)
			} else {
				r.HeapProfile = file
			}
		}
		kernel := "-"
		if st.Kernel != nil {
			kernel = fmt.Sprintf("%.1f MiB", slope.MiB(uint64(max(0, st.Kernel.Total()))))
		}
		threads := 0
		if len(st.Samples) > 0 {
			threads = st.Samples[len(st.Samples)-1].Threads
		}
		log.Printf("%s: %6d conns  rss %7.1f MiB  heap+stack %7.1f MiB  goroutines %6d  threads %4d  fds %6d  kernel sockets %s  (%.1fs)",
			impl, n, slope.MiB(st.RSS), slope.MiB(st.HeapStack), st.Goroutines, threads, st.FDs, kernel, time.Since(start).Seconds())
	}
	r.RSSBaseline, r.HeapStackBaseline = r.Fit()
	return nil
}

// sample reads /stats?gc=1 three times and keeps the minima.
func sample(addr string, n int) (Step, error) {
	return slope.Sample(n, slope.LastCounts, func() (srvstats.Snapshot, srvstats.Snapshot, error) {
		s, err := harness.FetchStats(addr, true)
		if err == nil && s.Sessions != int64(n) {
			err = fmt.Errorf("sessions changed to %d while sampling %d (closes %d)", s.Sessions, n, s.Closes)
		}
		return s, s, err
	})
}

func printTable(w io.Writer, results []Result, ns []int) {
	if *useTLS {
		fmt.Fprintln(w, "-tls: every client connection is wss:// (TLS 1.3, ECDSA P-256 certificate)")
	}
	if *compress {
		fmt.Fprintln(w, "-compress: every client negotiated permessage-deflate and had one ~2 KiB echo reply compressed before idling")
	}
	header := "impl\tidle\t"
	for _, n := range ns {
		header += fmt.Sprintf("RSS@%d\t", n)
	}
	var rows []slope.Row[srvstats.Snapshot]
	for i := range results {
		r := &results[i]
		cells := fmt.Sprintf("%.1fM\t", slope.MiB(r.Idle.RSS))
		for j := range ns {
			if j < len(r.Steps) {
				cells += fmt.Sprintf("%.1fM\t", slope.MiB(r.Steps[j].RSS))
			} else {
				cells += "-\t"
			}
		}
		rows = append(rows, slope.Row[srvstats.Snapshot]{Name: r.Impl, Cells: cells, Result: &r.Result})
	}
	slope.PrintTable(w, header, rows, func(fitted map[string]*slope.Result[srvstats.Snapshot]) string {
		lp, mz := fitted["livepoll"], fitted["mizu"]
		if lp == nil || mz == nil || !(mz.RSSPerConn > 0 && mz.HeapStackPerConn > 0) {
			return ""
		}
		return fmt.Sprintf("livepoll/mizu: RSS per conn %.3f (mizu %.1fx more), heap+stack per conn %.3f\n",
			lp.RSSPerConn/mz.RSSPerConn, mz.RSSPerConn/lp.RSSPerConn, lp.HeapStackPerConn/mz.HeapStackPerConn)
	})
}

// runClient is the fleet child: each stdin line N grows the fleet to N
// connections and is answered "ok N" (or "err ..."). At EOF on stdin it
// closes everything and exits. Connections are read by epoll loops only to
// answer pings and close frames; no goroutine waits on an idle connection.
func runClient() error {
	time.AfterFunc(*timeout, func() { os.Exit(2) })
	if *useTLS {
		return runTLSClient()
	}
	maxFD, _ := proc.RaiseNOFILE()
	var loops []*wsfleet.Loop
	var running sync.WaitGroup
	var echo echoes
	for range 2 {
		l, err := wsfleet.NewFrameLoop(int(maxFD), echo.handler)
		if err != nil {
			return err
		}
		loops = append(loops, l)
		running.Go(l.Run)
	}
	err := growBySteps(func(have, n int) (int64, error) {
		spec := wsfleet.DialSpec{
			URL: *serverURL, From: have, To: n, Concurrency: *conc, Rate: *rate,
			First: func(i int) []byte {
				return fmt.Appendf(nil, `{"topic":"subscribe","data":{"topic":"room-%d"}}`, i%100)
			},
			Deflate: *compress,
			Opened: func(d wsfleet.Dialed) error {
				if *compress && !d.Deflate {
					syscall.Close(d.FD)
					return fmt.Errorf("connection %d: the server did not accept permessage-deflate", d.Index)
				}
				c := &wsfleet.Conn{FD: d.FD, ID: d.Index}
				if err := loops[d.Index%len(loops)].Add(c, d.Leftover); err != nil || !*compress {
					return err
				}
				// After the subscribe: the server counts the session on its first message.
				return c.Write(wsfleet.AppendClientFrame(nil, ws.OpText, echoMessage(d.Index)), 10*time.Second)
			},
		}
		if err := wsfleet.DialMany(context.Background(), spec); err != nil {
			return 0, err
		}
		if *compress {
			if err := echo.wait(n, 30*time.Second+time.Duration(n-have)*time.Millisecond); err != nil {
				return 0, err
			}
		}
		var closed int64
		for _, l := range loops {
			closed += l.Closed.Load()
		}
		return closed, nil
	})
	for _, l := range loops {
		l.Stop()
	}
	running.Wait()
	for _, l := range loops {
		l.CloseAll()
	}
	return err
}

// saveHeapProfile writes the server's heap profile (after a GC) to file: what its
// largest fleet holds, for `go tool pprof` (-diff_base against another server's).
func saveHeapProfile(addr, file string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", req.URL, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// growBySteps reads connection counts from stdin, one a line, and calls step to grow the
// fleet from the last count to each; after each it answers "ok N closed C" (C: the
// connections the server closed so far). It returns at EOF, or at the first bad line or
// error of step.
func growBySteps(step func(have, n int) (closed int64, err error)) error {
	have := 0
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil {
			return err
		}
		closed, err := step(have, n)
		if err != nil {
			return err
		}
		have = n
		fmt.Printf("ok %d closed %d\n", n, closed)
	}
	return nil
}

// runTLSClient is runClient for wss:// (-tls): the same steps and answers, through a
// tlsfleet (a reader goroutine per connection, which answers pings and close frames).
func runTLSClient() error {
	config, err := tlscert.LoadClientConfig(*caFile)
	if err != nil {
		return err
	}
	fleet := tlsfleet.New(nil)
	err = growBySteps(func(have, n int) (int64, error) {
		err := fleet.DialMany(context.Background(), tlsfleet.DialSpec{
			URL: *serverURL, Config: config, From: have, To: n, Concurrency: *conc, Rate: *rate,
			First: func(i int) []byte {
				return fmt.Appendf(nil, `{"topic":"subscribe","data":{"topic":"room-%d"}}`, i%100)
			},
		})
		return fleet.Closed.Load(), err
	})
	fleet.CloseAll()
	return err
}
