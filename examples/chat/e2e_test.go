//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const chromiumPath = "/usr/bin/chromium"

// TestE2EChromium runs e2e/chat.mjs: two nodes sharing an (in-process) NATS server, a
// headless Chromium page on each, ann and bob in the lobby. See the script for the steps.
func TestE2EChromium(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	need(t, err == nil, "node is not on PATH (%v); install nodejs and npm, then run `npm ci` in examples/chat/e2e", err)
	_, err = os.Stat(filepath.Join("e2e", "node_modules", "playwright-core", "package.json"))
	need(t, err == nil, "examples/chat/e2e/node_modules/playwright-core is missing: run `npm ci` in examples/chat/e2e (%v)", err)
	_, err = os.Stat(chromiumPath)
	need(t, err == nil, "%s is missing: apt-get install -y chromium (%v)", chromiumPath, err)

	const refresh = time.Second
	nodes := natsCluster(t).start(t, 2, refresh)
	a, b := nodes[0], nodes[1]
	start := time.Now()
	out := runNode(t, node, 60*time.Second, "chat.mjs",
		a.base+"/", b.base+"/", strconv.FormatInt((3*refresh).Milliseconds(), 10), chromiumPath)
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

// runNode runs a script of e2e/ with args and returns its stdout. The child runs in its
// own process group, gets SIGTERM at the deadline (playwright closes its browser on it),
// and whatever is left of the group gets SIGKILL once it has exited or 5 s later.
func runNode(t *testing.T, node string, timeout time.Duration, script string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = "e2e"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	err := cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if stderr.Len() > 0 {
		t.Logf("node %s stderr:\n%.4000s", script, stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("node %s: killed after %v; stdout:\n%.2000s", script, timeout, stdout.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("node %s: %v", script, err)
	}
	if err != nil {
		t.Errorf("node %s: %v", script, err)
	}
	return stdout.Bytes()
}
