// Package leakcheck fails a test binary that leaves goroutines behind.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests and then waits up to 5 s for the goroutine count to return to what
// it was before them. If it does not, it prints the stacks of the goroutines still alive
// and exits with status 1. Use it as the body of TestMain.
func Main(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if err := settle(before, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func settle(want int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		extra, n := ownGoroutines()
		if n-extra <= want {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("leakcheck: %d goroutines alive after the tests, %d before:\n%s", n-extra, want, filter(string(buf)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ownGoroutines counts the goroutines that the test framework itself starts and keeps
// (the signal watcher of fuzzing, for one) among all n goroutines.
func ownGoroutines() (extra, n int) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	stacks := strings.Split(string(buf), "\n\n")
	for _, g := range stacks {
		if isFramework(g) {
			extra++
		}
	}
	return extra, len(stacks)
}

func isFramework(g string) bool {
	return strings.Contains(g, "os/signal.signal_recv") || strings.Contains(g, "os/signal.loop")
}

// filter drops the stacks of the test binary's own goroutines.
func filter(stacks string) string {
	var keep []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "leakcheck.settle") || strings.Contains(g, "testing.(*M).") || isFramework(g) {
			continue
		}
		keep = append(keep, g)
	}
	return strings.Join(keep, "\n\n")
}
