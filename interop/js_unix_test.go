//go:build unix

package interop

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// nodeReady checks what the JS clients need: node on PATH and interop/js's npm ci.
func nodeReady(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	need(t, err == nil, "node is not on PATH (%v); install nodejs and npm, then run `npm ci` in interop/js", err)
	for _, pkg := range []string{"ws", "playwright-core"} {
		_, err := os.Stat(filepath.Join("js", "node_modules", pkg, "package.json"))
		need(t, err == nil, "interop/js/node_modules/%s is missing: run `npm ci` in interop/js (%v)", pkg, err)
	}
	return node
}

// runNode runs a script of interop/js with args and returns its stdout. The child runs in
// its own process group, gets SIGTERM at the deadline (playwright closes its browser on
// it) and the whole group gets SIGKILL once it has exited or 5 s later.
func runNode(t *testing.T, node string, timeout time.Duration, script string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = "js"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	err := cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever of the group is left
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

// TestNodeWS runs checks.mjs with the ws package (interop/js/package.json pins it).
func TestNodeWS(t *testing.T) {
	t.Parallel()
	node := nodeReady(t)
	a := runServer(t)
	out := runNode(t, node, 90*time.Second, "node_client.mjs", a.wsURL, strconv.Itoa(int(idle/time.Millisecond)))
	r := parseReport(t, out)
	t.Logf("ws %s", r.Version)
	checkReport(t, a, "ws", r, true)
}

const chromiumPath = "/usr/bin/chromium"

// TestChromium runs checks.mjs in a page of headless Chromium, served by the test server.
func TestChromium(t *testing.T) {
	t.Parallel()
	node := nodeReady(t)
	_, err := os.Stat(chromiumPath)
	need(t, err == nil, "%s is missing: apt-get install -y chromium (%v)", chromiumPath, err)
	a := runServer(t)
	page := a.base + "/?idle=" + strconv.Itoa(int(idle/time.Millisecond))
	out := runNode(t, node, 120*time.Second, "browser_client.mjs", page, chromiumPath)
	r := parseReport(t, out)
	t.Logf("chromium %s (%s)", r.Browser, r.Version)
	checkReport(t, a, "chromium", r, false)
}
