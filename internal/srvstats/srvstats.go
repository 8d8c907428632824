// Package srvstats serves and reads the /stats endpoint of the test and benchmark servers
// (cmd/loadgen's own server, bench/servers/*): a session count kept by the app plus the
// process's memory, goroutine, descriptor and CPU figures, as JSON.
package srvstats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
)

// Counters are kept by the app's live callbacks. All fields are safe for
// concurrent use.
type Counters struct {
	// Sessions counts sessions that have had their first message handled
	// and have not closed yet. Every benchmark client sends a message right
	// after the handshake, so Sessions == N means N clients are connected
	// and their first message (a subscribe) has taken effect.
	Sessions atomic.Int64
	// Auths counts OnAuth calls (handshakes accepted so far).
	Auths atomic.Int64
	// Closes counts OnClose calls.
	Closes atomic.Int64
}

// Snapshot is the JSON body of /stats. The process figures (RSSBytes, FDs, CPU) are
// read from /proc and getrusage on Linux and are zero (FDs -1) elsewhere.
type Snapshot struct {
	Sessions   int64  `json:"sessions"`
	Auths      int64  `json:"auths"`
	Closes     int64  `json:"closes"`
	RSSBytes   uint64 `json:"rss_bytes"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapSys    uint64 `json:"heap_sys"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
	FDs        int    `json:"fds"`
	Threads    int    `json:"threads"` // OS threads of the process (0: unknown)
	CPUUserNs  int64  `json:"cpu_user_ns"`
	CPUSysNs   int64  `json:"cpu_sys_ns"`
}

// Handler serves GET /stats. With ?gc=1 it first runs two GCs and returns
// freed memory to the OS, so RSS reflects live memory.
func Handler(c *Counters) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
			runtime.GC()
			debug.FreeOSMemory()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Take(c))
	})
}

// Take reads the current figures.
func Take(c *Counters) Snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	user, sys := CPUSelf()
	return Snapshot{
		Sessions:   c.Sessions.Load(),
		Auths:      c.Auths.Load(),
		Closes:     c.Closes.Load(),
		RSSBytes:   RSS(),
		HeapInuse:  ms.HeapInuse,
		HeapSys:    ms.HeapSys,
		StackInuse: ms.StackInuse,
		Sys:        ms.Sys,
		Goroutines: runtime.NumGoroutine(),
		FDs:        FDs(),
		Threads:    Threads(),
		CPUUserNs:  user,
		CPUSysNs:   sys,
	}
}

// client keeps no idle connections: a reading every second or so does not need them,
// and an idle connection is a goroutine that outlives the caller.
var client = &http.Client{
	Timeout:   60 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// Fetch reads the /stats endpoint at url (http://host:port/stats); gc asks the server
// to collect garbage first (?gc=1). It gives up when ctx is done or after 60 s.
func Fetch(ctx context.Context, url string, gc bool) (Snapshot, error) {
	var s Snapshot
	if gc {
		url += "?gc=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return s, err
	}
	resp, err := client.Do(req)
	// nbio's HTTP engine now and then ends a fresh connection before answering (EOF,
	// seen right after its start in bench runs); /stats is a read-only side channel, so
	// the request is tried twice more, 50 ms apart.
	for try := 1; err != nil && try < 3 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)); try++ {
		time.Sleep(50 * time.Millisecond)
		resp, err = client.Do(req.Clone(ctx))
	}
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("GET %s: %w", url, err)
	}
	return s, nil
}
