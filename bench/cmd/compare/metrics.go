package main

// What the summary takes from each program's JSON for one implementation in
// one run. Reports are decoded as generic JSON so that a field an older
// program does not write (loadgen's unanswered and server_closed_by, for one)
// is simply unknown in that run — shown as "?" — rather than zero.

// units of every metric; a key ending in "." covers a by-reason family.
var units = map[string]string{
	"rss_per_conn": "bytes", "heap_stack_per_conn": "bytes", "goroutines_per_conn": "", "fds_per_conn": "",
	"echo.per_sec": "1/s", "echo.p50": "ms", "echo.p99": "ms", "echo.sent": "requests",
	"echo.server_cpu_us": "us", "echo.loadgen_cpu_us": "us",
	"echo.lost": "messages", "echo.unanswered": "requests", "echo.failed": "connections",
	"echo.server_closed": "connections", "echo.server_closed_by.": "connections", "echo.server_closed_by": "connections",
	"connect.per_sec": "1/s", "connect.failed": "connections", "connect.server_closed": "connections",
	"abuse.p50": "ms", "abuse.p99": "ms", "abuse.lost": "messages", "abuse.server_closed": "connections",
	"abuse.peak_rss": "bytes", "abuse.peak_heap": "bytes",
	"abuse.flooders_closed": "connections", "abuse.nonreaders_closed": "connections", "abuse.pingflood_closed": "connections",
}

// fanoutParts are the parts measured by cmd/fanout; their metrics are named
// "<part>.<metric>".
var fanoutParts = []string{"fanout", "window16", "latency", "fanout2k", "fanoutz", "fanouttls"}

// compressionFanout are the fan-out parts of 2 KiB messages (issue 11), which also
// report the bytes on the wire and how many deliveries arrived compressed.
var compressionFanout = []string{"fanout2k", "fanoutz"}

// compressionParts are all the parts of issue 11's figures.
var compressionParts = []string{"fanout2k", "fanoutz", "memoryz"}

// tlsParts are the parts over wss:// (issue 14).
var tlsParts = []string{"memorytls", "fanouttls"}

func init() {
	for _, p := range fanoutParts {
		for m, u := range map[string]string{
			"per_sec": "1/s", "cpu_us": "us", "other_cores": "cores", "lost": "messages",
			"lost_closed": "messages", "dup": "messages", "closed": "subscribers",
			"p50": "ms", "p90": "ms", "p99": "ms", "p999": "ms", "max": "ms",
		} {
			units[p+"."+m] = u
		}
	}
	for _, p := range compressionFanout {
		units[p+".wire_bytes"] = "bytes"
		units[p+".compressed"] = "messages"
		units[p+".received"] = "messages"
	}
	for m, u := range map[string]string{"rss_per_conn": "bytes", "heap_stack_per_conn": "bytes", "goroutines_per_conn": "",
		"fds_per_conn": "", "compressed_echoes": "connections"} {
		units["memoryz."+m] = u
		if m != "compressed_echoes" {
			units["memorytls."+m] = u
		}
	}
}

// extract returns the metrics in one report r of part, and the by-reason
// prefixes whose map the report had (a reason missing from a present map
// is zero, not unknown). A report with an error yields nothing: every metric
// of that run is unknown.
func extract(part string, r map[string]any) (map[string]float64, map[string]bool) {
	m := map[string]float64{}
	present := map[string]bool{}
	if e, _ := r["error"].(string); e != "" {
		return m, present
	}
	put := func(name string, path ...string) {
		if v, ok := num(r, path...); ok {
			m[name] = v
		}
	}
	switch part {
	case "memory":
		put("rss_per_conn", "rss_bytes_per_conn")
		put("heap_stack_per_conn", "heap_stack_bytes_per_conn")
		put("goroutines_per_conn", "goroutines_per_conn")
		put("fds_per_conn", "fds_per_conn")
	case "memoryz":
		put("memoryz.rss_per_conn", "rss_bytes_per_conn")
		put("memoryz.heap_stack_per_conn", "heap_stack_bytes_per_conn")
		put("memoryz.goroutines_per_conn", "goroutines_per_conn")
		put("memoryz.fds_per_conn", "fds_per_conn")
		put("memoryz.compressed_echoes", "compressed_echoes")
	case "memorytls":
		put("memorytls.rss_per_conn", "rss_bytes_per_conn")
		put("memorytls.heap_stack_per_conn", "heap_stack_bytes_per_conn")
		put("memorytls.goroutines_per_conn", "goroutines_per_conn")
		put("memorytls.fds_per_conn", "fds_per_conn")
	case "fanout", "window16", "latency", "fanout2k", "fanoutz", "fanouttls":
		p := part + "."
		put(p+"per_sec", "deliveries_per_sec")
		put(p+"cpu_us", "cpu_us_per_delivery")
		secs, ok := num(r, "client", "seconds")
		if !ok {
			secs, ok = num(r, "floor", "seconds")
		}
		if other, ok2 := num(r, "other_cpu_ns"); ok && ok2 && secs > 0 {
			m[p+"other_cores"] = other / 1e9 / secs
		}
		for _, k := range []string{"lost", "lost_closed", "dup", "closed"} {
			put(p+k, "client", k)
		}
		for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
			if v, ok := num(r, "client", "latency", k+"_us"); ok {
				m[p+k] = v / 1000
			}
		}
		if part == "fanout2k" || part == "fanoutz" {
			put(p+"wire_bytes", "client", "wire_bytes_per_delivery")
			put(p+"compressed", "client", "compressed")
			put(p+"received", "client", "total")
		}
	case "echo":
		put("echo.per_sec", "load", "deliveries_per_sec")
		put("echo.p50", "load", "latency", "p50_ms")
		put("echo.p99", "load", "latency", "p99_ms")
		put("echo.sent", "load", "sent")
		// Closed loop (issue 13): CPU per round trip in the load window; an older loadgen
		// did not measure it, and the tables show "–".
		put("echo.server_cpu_us", "load", "server_cpu_us_per_delivery")
		put("echo.loadgen_cpu_us", "load", "loadgen_cpu_us_per_delivery")
		put("echo.lost", "load", "lost")
		put("echo.unanswered", "load", "unanswered")
		put("echo.failed", "connections", "failed")
		put("echo.server_closed", "connections", "server_closed")
		if by, ok := lookup(r, "connections", "server_closed_by").(map[string]any); ok {
			present["echo.server_closed_by."] = true
			sum := 0.0
			for reason, v := range by {
				if f, ok := v.(float64); ok {
					m["echo.server_closed_by."+reason] = f
					sum += f
				}
			}
			// The sum says the map was there, even when it was empty.
			m["echo.server_closed_by"] = sum
		}
	case "abuse":
		put("abuse.p50", "load", "latency", "p50_ms")
		put("abuse.p99", "load", "latency", "p99_ms")
		put("abuse.lost", "load", "lost")
		put("abuse.server_closed", "connections", "server_closed")
		put("abuse.peak_rss", "abuse", "server", "peak_rss_bytes")
		put("abuse.peak_heap", "abuse", "server", "peak_heap_inuse_bytes")
		for _, kind := range []string{"flooders", "nonreaders", "pingflood"} {
			if by, ok := lookup(r, "abuse", kind, "closed_by").(map[string]any); ok {
				sum := 0.0
				for _, v := range by {
					if f, ok := v.(float64); ok {
						sum += f
					}
				}
				m["abuse."+kind+"_closed"] = sum
			}
		}
	case "connect":
		put("connect.per_sec", "connections", "connect_rate_per_sec")
		put("connect.failed", "connections", "failed")
		put("connect.server_closed", "connections", "server_closed")
	}
	return m, present
}

// lookup finds a value in decoded JSON by its path of keys (nil if absent).
func lookup(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[k]
	}
	return v
}

// num finds a number in decoded JSON by its path of keys.
func num(m map[string]any, path ...string) (float64, bool) {
	f, ok := lookup(m, path...).(float64)
	return f, ok
}
