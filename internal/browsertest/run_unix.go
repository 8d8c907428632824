//go:build unix

package browsertest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Run runs script of s.Dir with args and returns its stdout. A non-zero exit
// marks the test failed; a failed start, the deadline or another error ends
// it. The child runs in its own process group, gets SIGTERM at the deadline
// (playwright closes its browser on it), and whatever is left of the group
// gets SIGKILL once it has exited or 5 s later.
func (s Scripts) Run(t testing.TB, timeout time.Duration, script string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Node, append([]string{script}, args...)...)
	cmd.Dir = s.Dir
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
