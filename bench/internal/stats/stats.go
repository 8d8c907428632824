// Package stats serves the /stats endpoint shared by the benchmark servers:
// a session count kept by the app plus the process's memory, goroutine, fd
// and CPU figures, so that a driver can read them over HTTP.
package stats

import (
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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

// Snapshot is the JSON body of /stats.
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
		FDs:        countFDs(),
		CPUUserNs:  user,
		CPUSysNs:   sys,
	}
}

// RSS returns VmRSS of this process in bytes, or 0 if unknown.
func RSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// CPUSelf returns this process's user and system CPU time in nanoseconds.
func CPUSelf() (user, sys int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return ru.Utime.Nano(), ru.Stime.Nano()
}

func countFDs() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names) - 1 // the directory's own fd
}
