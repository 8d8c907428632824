package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The compression tables (issue 11): the 2 KiB fan-out plain and compressed, what
// compression costs each server against its own plain figure, and memory per idle
// connection with compression negotiated. Each appears only when its parts are in -out.

// Issue 11's targets, checked against the medians in the cost table.
const (
	targetCPURatio   = 1.2 // livepoll's compressed CPU per delivery, at most this × its plain one
	targetMemoryDiff = 100 // livepoll's RSS slope with compression, within this many bytes of without
)

func compressionSections(t *tab, add func(key, title string, fn func())) {
	fanoutCols := func(p string) []column {
		return []column{col(p+".per_sec", intFmt), col(p+".cpu_us", fixed(2)), col(p+".other_cores", fixed(2)),
			col(p+".wire_bytes", intFmt), col(p+".compressed", intFmt), col(p+".received", intFmt),
			col(p+".lost", intFmt), col(p+".dup", intFmt), col(p+".closed", intFmt)}
	}
	fanoutHead := []string{"deliveries/s", "server CPU µs/delivery", "other cores", "bytes on the wire per delivery",
		"deliveries compressed", "deliveries received", "lost", "dup", "subscribers closed"}
	for _, p := range []struct{ name, title string }{
		{"fanout2k", "Fan-out of 2 KiB messages, closed loop, 1 in flight, no compression"},
		{"fanoutz", "Fan-out of 2 KiB messages, closed loop, 1 in flight, permessage-deflate negotiated by every subscriber"},
	} {
		if t.has(p.name) {
			add(p.name, p.title, func() {
				t.head(fanoutHead...)
				t.rows(p.name, fanoutCols(p.name)...)
				t.notRun(p.name)
			})
		}
	}
	if t.has("fanout2k") && t.has("fanoutz") {
		add("compression", "What compression costs: 2 KiB fan-out, compressed against plain (medians)", func() {
			t.head("CPU µs/delivery plain", "compressed", "compressed / plain", "wire bytes/delivery plain", "compressed", "compressed / plain")
			t.rows("fanoutz", col("fanout2k.cpu_us", fixed(2)), col("fanoutz.cpu_us", fixed(2)), ratioCol("fanoutz.cpu_us", "fanout2k.cpu_us"),
				col("fanout2k.wire_bytes", intFmt), col("fanoutz.wire_bytes", intFmt), ratioCol("fanoutz.wire_bytes", "fanout2k.wire_bytes"))
			t.notRun("fanoutz")
			cpuTargets(t)
		})
	}
	if t.has("memoryz") {
		add("memoryz", "Memory per idle connection with permessage-deflate negotiated (least-squares slope)", func() {
			heads := []string{"RSS per conn", "heap+stacks per conn", "goroutines per conn", "fds per conn", "clients with a compressed echo"}
			cols := []column{col("memoryz.rss_per_conn", bytesFmt), col("memoryz.heap_stack_per_conn", bytesFmt),
				col("memoryz.goroutines_per_conn", fixed(2)), col("memoryz.fds_per_conn", fixed(2)), col("memoryz.compressed_echoes", intFmt)}
			if t.has("memory") {
				heads = append(heads, "RSS per conn without compression", "difference (medians)")
				cols = append(cols, col("rss_per_conn", bytesFmt), diffCol("memoryz.rss_per_conn", "rss_per_conn"))
			}
			t.head(heads...)
			t.rows("memoryz", cols...)
			t.notRun("memoryz")
			if t.has("memory") {
				memoryTarget(t)
			}
		})
	}
}

// notRun writes, under a table, why the part did not run some implementations.
func (t *tab) notRun(part string) {
	for _, impl := range t.s.impls {
		if why := t.s.st.na[[2]string{part, impl}]; why != "" && t.took(part, impl) {
			fmt.Fprintf(t.b, "\nn/a for %s: %s.\n", impl, why)
		}
	}
}

// ratioCol is the ratio of two metrics' medians ("?" if one is unknown).
func ratioCol(num, den string) column {
	return func(st *stats, impl string) string {
		a, b := st.get(impl, num), st.get(impl, den)
		switch {
		case !a.ok() && st.why(num, impl) != "":
			return "n/a"
		case !a.ok() || !b.ok() || b.Median == 0:
			return "?"
		}
		return strconv.FormatFloat(a.Median/b.Median, 'f', 2, 64) + "×"
	}
}

// diffCol is a metric's median minus another's, signed.
func diffCol(metric, base string) column {
	return func(st *stats, impl string) string {
		a, b := st.get(impl, metric), st.get(impl, base)
		switch {
		case !a.ok() && st.why(metric, impl) != "":
			return "n/a"
		case !a.ok() || !b.ok():
			return "?"
		}
		d := a.Median - b.Median
		if d > 0 {
			return "+" + bytesFmt(d)
		}
		return bytesFmt(d)
	}
}

// cpuTargets states, from the medians, whether livepoll meets issue 11's fan-out targets.
func cpuTargets(t *tab) {
	st := &t.s.st
	z, plain := st.get("livepoll", "fanoutz.cpu_us"), st.get("livepoll", "fanout2k.cpu_us")
	if !z.ok() || !plain.ok() || plain.Median == 0 {
		t.b.WriteString("\nIssue 11's targets: not checked (livepoll has no figure in both parts).\n")
		return
	}
	ratio := z.Median / plain.Median
	fmt.Fprintf(t.b, "\nIssue 11's targets, on the medians: livepoll's compressed CPU per delivery at most %.1f× its plain one: %.2f×, %s",
		targetCPURatio, ratio, met(ratio <= targetCPURatio))
	var peers []string
	below := true
	for _, impl := range t.s.impls {
		if impl == "livepoll" || impl == "floor" || !t.took("fanoutz", impl) || st.why("fanoutz.cpu_us", impl) != "" {
			continue
		}
		p := st.get(impl, "fanoutz.cpu_us")
		if !p.ok() {
			peers = append(peers, impl+" ?")
			below = false
			continue
		}
		peers = append(peers, impl+" "+fixed(2)(p.Median))
		below = below && z.Median < p.Median
	}
	if len(peers) == 0 {
		t.b.WriteString("; below every peer's compressed figure: no peer measured.\n")
		return
	}
	slices.Sort(peers)
	fmt.Fprintf(t.b, "; below every peer's compressed figure (livepoll %s µs; %s): %s.\n",
		fixed(2)(z.Median), strings.Join(peers, ", "), met(below))
}

// memoryTarget states whether livepoll's idle connection costs the same with compression.
func memoryTarget(t *tab) {
	st := &t.s.st
	z, plain := st.get("livepoll", "memoryz.rss_per_conn"), st.get("livepoll", "rss_per_conn")
	if !z.ok() || !plain.ok() {
		t.b.WriteString("\nIssue 11's target: not checked (livepoll has no figure in both parts).\n")
		return
	}
	d := z.Median - plain.Median
	fmt.Fprintf(t.b, "\nIssue 11's target, on the medians: livepoll's RSS per idle connection with compression within %d B of without: %s B, %s.\n",
		targetMemoryDiff, strconv.FormatFloat(d, 'f', 0, 64), met(d <= targetMemoryDiff && d >= -targetMemoryDiff))
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}
