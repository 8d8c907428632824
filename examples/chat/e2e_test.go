//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/browsertest"
)

// TestE2EChromium runs e2e/chat.mjs: two nodes sharing an (in-process) NATS server, a
// headless Chromium page on each, ann and bob in the lobby. See the script for the steps.
func TestE2EChromium(t *testing.T) {
	t.Parallel()
	js := browsertest.NeedNode(t, "e2e", "examples/chat/e2e", "playwright-core")
	chromium := browsertest.NeedChromium(t)

	const refresh = time.Second
	nodes := natsCluster(t).start(t, 2, refresh)
	a, b := nodes[0], nodes[1]
	start := time.Now()
	out := js.Run(t, 60*time.Second, "chat.mjs",
		a.base+"/", b.base+"/", strconv.FormatInt((3*refresh).Milliseconds(), 10), chromium)
	t.Logf("browser run took %v", time.Since(start).Round(time.Millisecond))

	var report struct {
		Browser string
		Steps   []struct {
			Name  string
			OK    bool
			MS    int
			Error string
		}
		Console    []string
		PageErrors []string
		Error      string
	}
	if err := json.Unmarshal(lastLine(out), &report); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	t.Logf("chromium %s", report.Browser)
	for _, s := range report.Steps {
		if s.OK {
			t.Logf("ok   %-62s %5d ms", s.Name, s.MS)
		} else {
			t.Errorf("FAIL %s after %d ms: %s", s.Name, s.MS, s.Error)
		}
	}
	if report.Error != "" {
		t.Errorf("script: %s", report.Error)
	}
	if want := 9; len(report.Steps) != want || !report.Steps[len(report.Steps)-1].OK {
		t.Errorf("%d steps ran, want all %d passed", len(report.Steps), want)
	}
	for _, e := range report.PageErrors {
		t.Errorf("page error: %s", e)
	}
	for _, line := range report.Console {
		// A refused name is the only expected complaint; a CSP violation or a failed load is not.
		if strings.Contains(line, " error: ") && !strings.Contains(line, "status of 401") {
			t.Errorf("page console: %s", line)
		} else {
			t.Logf("page console: %s", line)
		}
	}

	// The browser is closed: every session is over and every name released.
	for i, n := range nodes {
		waitFor(t, "the browser's sessions to close", func() bool { return n.srv.Stats().Sessions == 0 })
		n.mu.Lock()
		left := len(n.names) + len(n.sessions) + len(n.rooms)
		n.mu.Unlock()
		if left != 0 {
			t.Errorf("node %d still holds %d names, sessions or rooms", i, left)
		}
	}
}

func lastLine(out []byte) []byte {
	out = bytes.TrimSpace(out)
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		return out[i+1:]
	}
	return out
}
