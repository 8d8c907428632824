package srvstats

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/livepoll/livepoll/internal/proc"
)

// RSS returns VmRSS of this process in bytes, or 0 if unknown.
func RSS() uint64 {
	rss, _ := proc.RSS(0)
	return rss
}

// CPUSelf returns this process's user and system CPU time in nanoseconds.
func CPUSelf() (user, sys int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return ru.Utime.Nano(), ru.Stime.Nano()
}

// Threads returns the number of OS threads of this process, or 0 if unknown.
func Threads() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}

// FDs returns the number of open descriptors of this process, or -1 if unknown.
func FDs() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names) - 1 // the directory's own fd
}
