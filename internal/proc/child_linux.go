package proc

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Child is a started child process that the kernel kills (SIGKILL) when the thread that
// started it exits, which for a Go program means when the program exits. All methods
// are safe for concurrent use.
type Child struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts cmd as a child that dies with this process (PDEATHSIG). The caller sets
// up cmd's stdin, stdout and stderr before; Start sets SysProcAttr. A goroutine waits
// for the child; Done is closed when it has exited.
func Start(cmd *exec.Cmd) (*Child, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{Cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Done is closed once the child has exited and its pipes are closed.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exited reports whether the child has exited.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Err is the child's exit status (cmd.Wait's error); valid once Done is closed.
func (c *Child) Err() error {
	<-c.done
	return c.err
}

// Wait waits for the child to exit, killing it after timeout.
func (c *Child) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.Cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s killed after %v", filepath.Base(c.Cmd.Path), timeout)
	}
	return c.err
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits.
func (c *Child) Stop(grace time.Duration) {
	if c.Exited() {
		return
	}
	_ = c.Cmd.Process.Signal(syscall.SIGTERM)
	_ = c.Wait(grace)
}
