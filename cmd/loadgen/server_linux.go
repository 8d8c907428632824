//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/livepoll/livepoll/internal/proc"
	"github.com/livepoll/livepoll/live"
)

// serverSpec is the server child's first stdin line.
type serverSpec struct {
	ExitAfter time.Duration `json:"exit_after"` // safety exit
	// MemProfileRate, when not 0, is the server's runtime.MemProfileRate: with
	// -heap-profile the own server samples every 4 KiB, so a small fleet's profile has
	// sites to show (the default, one sample per 512 KiB, may find none at a few hundred
	// connections).
	MemProfileRate int `json:"mem_profile_rate,omitempty"`
}

// serverHello is the server child's first stdout line.
type serverHello struct {
	Addr       string `json:"addr"`
	NOFILESoft uint64 `json:"nofile_soft"`
	NOFILEHard uint64 `json:"nofile_hard"`
}

// runServer is the server child's main: loadgen's own livepoll server on a free
// loopback port. It serves until its stdin reaches EOF (the coordinator closed it or
// died), SIGTERM, or ExitAfter.
func runServer(stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewReader(stdin)
	var spec serverSpec
	if err := json.NewDecoder(in).Decode(&spec); err != nil {
		return fmt.Errorf("server: reading its spec: %w", err)
	}
	if spec.MemProfileRate > 0 {
		runtime.MemProfileRate = spec.MemProfileRate
	}
	if spec.ExitAfter > 0 {
		time.AfterFunc(spec.ExitAfter, func() {
			fmt.Fprintf(os.Stderr, "loadgen server: exit-after %v reached\n", spec.ExitAfter)
			os.Exit(3)
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h, srv := newApp(live.Options{})
	hs := newHTTPServer(h)
	go hs.Serve(ln)
	soft, hard, _ := proc.NOFILE()
	if err := json.NewEncoder(stdout).Encode(serverHello{Addr: ln.Addr().String(), NOFILESoft: soft, NOFILEHard: hard}); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, in)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	hs.Close()
	return srv.Close()
}

// serverProc is the server child seen from the coordinator.
type serverProc struct {
	child *proc.Child
	stdin io.WriteCloser
	hello serverHello
}

// startServer re-executes this program as the server child.
func startServer(self string, spec serverSpec, stderr io.Writer) (*serverProc, error) {
	cmd := exec.Command(self, roleFlag+roleServer)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	child, err := proc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting the server: %w", err)
	}
	s := &serverProc{child: child, stdin: stdin}
	if err := json.NewEncoder(stdin).Encode(spec); err != nil {
		s.stop()
		return nil, err
	}
	hello := make(chan error, 1)
	go func() { hello <- json.NewDecoder(stdout).Decode(&s.hello) }()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case err = <-hello:
	case <-t.C:
		err = fmt.Errorf("no answer in 30 s")
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("the server did not start: %w", err)
	}
	return s, nil
}

func (s *serverProc) stop() {
	s.stdin.Close()
	if err := s.child.Wait(10 * time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: server: %v\n", err)
	}
}
