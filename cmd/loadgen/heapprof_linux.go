//go:build linux

package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// The heap profile is parsed in process with github.com/google/pprof/profile rather than
// by running `go tool pprof`: loadgen then needs no Go toolchain where it runs, and the
// per-connection figures come from the same numbers the report prints.

// heapReport is the server's heap profile taken at the end of the load phase.
type heapReport struct {
	File  string `json:"file"` // where it was written (-heap-profile)
	URL   string `json:"url"`  // where it was fetched
	Conns int64  `json:"conns"`
	// InuseBytes is the profile's in-use space: sampled (one sample per ~512 KiB
	// allocated, by default) and scaled, so an estimate that is good for large totals.
	InuseBytes   int64      `json:"inuse_bytes"`
	PerConnBytes float64    `json:"per_conn_bytes"`
	Top          []heapSite `json:"top"` // by in-use space, most first
}

// heapSite is one allocation site: the function that allocated (the profile's leaf
// frame), with its in-use space (flat, as `go tool pprof -top` shows it).
type heapSite struct {
	Function     string  `json:"function"`
	Location     string  `json:"location"` // file:line of the biggest sample
	InuseBytes   int64   `json:"inuse_bytes"`
	PerConnBytes float64 `json:"per_conn_bytes"`
	Share        float64 `json:"share"` // of InuseBytes
}

// pprofURLFor derives the heap profile's address from the stats URL or the WebSocket
// target: same host and port, /debug/pprof/heap.
func pprofURLFor(statsOrTarget string) string {
	u, err := url.Parse(statsOrTarget)
	if err != nil || u.Host == "" {
		return ""
	}
	return "http://" + u.Host + "/debug/pprof/heap"
}

// fetchHeapProfile gets the heap profile at heapURL (after a GC: ?gc=1), writes it to
// file and sums its top sites over conns connections.
func fetchHeapProfile(ctx context.Context, heapURL, file string, conns int64, top int) (*heapReport, error) {
	u, err := url.Parse(heapURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("gc", "1")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	if err := os.WriteFile(file, body, 0o644); err != nil {
		return nil, err
	}
	rep, err := summarizeHeap(body, conns, top)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	rep.File, rep.URL = file, u.String()
	return rep, nil
}

// allocSite names the function that allocated a sample: its innermost frame outside
// package runtime (mallocgc, newobject, growslice … are how, not where); for the
// runtime's own allocations (goroutine structs: runtime.malg) the innermost runtime
// frame that is not an allocator entry point; failing that the innermost frame.
func allocSite(s *profile.Sample) (fn, where string) {
	fn, where = "?", "?"
	rank := 0 // 1: an allocator frame, 2: another runtime frame
	for _, loc := range s.Location {
		for _, l := range loc.Line { // innermost first: inlined callees precede their caller
			if l.Function == nil {
				continue
			}
			name := l.Function.Name
			r := 2
			switch {
			case !strings.HasPrefix(name, "runtime."):
				return name, fmt.Sprintf("%s:%d", l.Function.Filename, l.Line)
			case isAllocator(name):
				r = 1
			}
			if r > rank {
				fn, where, rank = name, fmt.Sprintf("%s:%d", l.Function.Filename, l.Line), r
			}
		}
	}
	return fn, where
}

// isAllocator reports whether a runtime function is one of the allocator's entry points.
func isAllocator(name string) bool {
	for _, p := range []string{"runtime.mallocgc", "runtime.newobject", "runtime.newarray", "runtime.growslice", "runtime.makeslice",
		"runtime.makemap", "runtime.mapassign", "runtime.rawstring", "runtime.rawbyteslice", "runtime.rawruneslice",
		"runtime.slicebytetostring", "runtime.concatstring", "runtime.convT", "runtime.makechan"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// summarizeHeap reads a heap profile and returns its top sites by in-use space.
func summarizeHeap(data []byte, conns int64, top int) (*heapReport, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "inuse_space" {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("not a heap profile (no inuse_space sample type)")
	}
	type site struct {
		bytes, biggest int64
		where          string
	}
	sites := map[string]*site{}
	rep := &heapReport{Conns: conns}
	for _, s := range p.Sample {
		v := s.Value[idx]
		if v == 0 {
			continue
		}
		rep.InuseBytes += v
		fn, where := allocSite(s)
		st := sites[fn]
		if st == nil {
			st = &site{}
			sites[fn] = st
		}
		st.bytes += v
		if v > st.biggest {
			st.biggest, st.where = v, where
		}
	}
	n := float64(max(conns, 1))
	rep.PerConnBytes = float64(rep.InuseBytes) / n
	for fn, st := range sites {
		rep.Top = append(rep.Top, heapSite{Function: fn, Location: st.where, InuseBytes: st.bytes,
			PerConnBytes: float64(st.bytes) / n, Share: float64(st.bytes) / float64(max(rep.InuseBytes, 1))})
	}
	slices.SortFunc(rep.Top, func(a, b heapSite) int {
		if c := cmp.Compare(b.InuseBytes, a.InuseBytes); c != 0 {
			return c
		}
		return cmp.Compare(a.Function, b.Function)
	})
	rep.Top = rep.Top[:min(top, len(rep.Top))]
	return rep, nil
}
