package main

// The wss:// tables (issue 14): memory per idle wss connection and fan-out over wss,
// each server beside its own ws:// figure when that part is in -out too. Each appears
// only when its part is in -out.

// servedTLS says how each server app serves wss:// (bench/README.md has the why).
const servedTLS = "wss served each library's way, with the same self-signed ECDSA P-256 certificate, TLS 1.3, ALPN http/1.1: " +
	"livepoll `Server.ServeTLS` on the listener (crypto/tls handshake, then livepoll's own record layer on the event loop); " +
	"mizu, gorilla and gws their usual handler under net/http's `ServeTLS` (crypto/tls, a `tls.Conn` per connection); " +
	"nbio `nbhttp.Config.AddrsTLS` and `TLSConfig` (nbio's fork of crypto/tls, run on its poller). " +
	"The clients are crypto/tls connections with a reader goroutine each, in their own process."

func tlsSections(t *tab, add func(key, title string, fn func())) {
	if t.has("memorytls") {
		add("memorytls", "Memory per idle wss connection (least-squares slope over the fleet sizes)", func() {
			heads := []string{"RSS per conn", "heap+stacks per conn", "goroutines per conn", "fds per conn"}
			cols := []column{col("memorytls.rss_per_conn", bytesFmt), col("memorytls.heap_stack_per_conn", bytesFmt),
				col("memorytls.goroutines_per_conn", fixed(2)), col("memorytls.fds_per_conn", fixed(2))}
			if t.has("memory") {
				heads = append(heads, "RSS per conn over ws", "wss − ws (medians)")
				cols = append(cols, col("rss_per_conn", bytesFmt), diffCol("memorytls.rss_per_conn", "rss_per_conn"))
			}
			t.head(heads...)
			t.rows("memorytls", cols...)
			t.notRun("memorytls")
			t.b.WriteString("\n" + servedTLS + "\n")
		})
	}
	if t.has("fanouttls") {
		add("fanouttls", "Fan-out over wss, closed loop, 1 message in flight", func() {
			heads := []string{"deliveries/s", "server CPU µs/delivery", "other cores", "p50", "p99", "lost", "dup", "subscribers closed"}
			cols := []column{col("fanouttls.per_sec", intFmt), col("fanouttls.cpu_us", fixed(2)), col("fanouttls.other_cores", fixed(2)),
				col("fanouttls.p50", msFmt), col("fanouttls.p99", msFmt),
				col("fanouttls.lost", intFmt), col("fanouttls.dup", intFmt), col("fanouttls.closed", intFmt)}
			if t.has("fanout") {
				heads = append(heads, "CPU µs/delivery over ws", "wss / ws (medians)")
				cols = append(cols, col("fanout.cpu_us", fixed(2)), ratioCol("fanouttls.cpu_us", "fanout.cpu_us"))
			}
			t.head(heads...)
			t.rows("fanouttls", cols...)
			t.notRun("fanouttls")
			t.b.WriteString("\n" + servedTLS + " Compare with ws:// the server CPU per delivery only: the wss client " +
				"(a goroutine and a decrypt per subscriber, on the same 2 cores) sets much of deliveries/s, latency and other cores.\n")
		})
	}
}
