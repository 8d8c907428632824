//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/livepoll/livepoll/internal/proc"
)

// part is one process's share of the fleet as the coordinator sees it: the coordinator's
// own (localPart) or a worker process's (workerPart). The methods are called in order:
// waitReady, startLoad, stop, close; progress and pid at any time, mark between
// waitReady and stop.
type part interface {
	pid() int
	progress() progress
	waitReady(ctx context.Context) (readyReport, error)
	startLoad() error
	mark(ctx context.Context) (mark, error)
	stop(ctx context.Context, lastSeq []int64) (partResult, error)
	close()
}

// localPart runs a fleet in this process.
type localPart struct {
	f       *fleet
	cancel  context.CancelFunc
	readyCh chan readyReport
}

func startLocal(spec partSpec) (*localPart, error) {
	f, err := newFleet(spec)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &localPart{f: f, cancel: cancel, readyCh: make(chan readyReport, 1)}
	go func() { p.readyCh <- f.connect(ctx) }()
	return p, nil
}

func (p *localPart) pid() int           { return os.Getpid() }
func (p *localPart) progress() progress { return p.f.progress() }

func (p *localPart) waitReady(ctx context.Context) (readyReport, error) {
	select {
	case r := <-p.readyCh:
		p.readyCh <- r // keep it for close
		return r, nil
	case <-ctx.Done():
		return readyReport{}, ctx.Err()
	}
}

func (p *localPart) startLoad() error { p.f.startLoad(); return nil }

func (p *localPart) mark(context.Context) (mark, error) { return p.f.mark(), nil }

func (p *localPart) stop(ctx context.Context, lastSeq []int64) (partResult, error) {
	return p.f.stop(lastSeq), nil
}

func (p *localPart) close() {
	p.cancel()
	<-p.readyCh // connect has returned
	p.f.close()
}

// Worker protocol: the coordinator writes JSON lines to the worker's stdin — first the
// partSpec, then {"cmd":"load"} and {"cmd":"stop","last_seq":[…]}, and {"cmd":"mark"}
// in between — and closes it to end the worker. The worker writes JSON lines to stdout:
// "progress" every second, "ready" once, "mark" for each mark, "result" after stop,
// "error" if it cannot go on.

type command struct {
	Cmd     string  `json:"cmd"`
	LastSeq []int64 `json:"last_seq,omitempty"`
}

type event struct {
	Type     string       `json:"type"`
	Progress *progress    `json:"progress,omitempty"`
	Ready    *readyReport `json:"ready,omitempty"`
	Result   *partResult  `json:"result,omitempty"`
	Mark     *mark        `json:"mark,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// runWorker is a worker process's main: it runs one part as the coordinator says.
func runWorker(stdin io.Reader, stdout io.Writer) error {
	in := json.NewDecoder(bufio.NewReader(stdin))
	var spec partSpec
	if err := in.Decode(&spec); err != nil {
		return fmt.Errorf("worker: reading the part spec: %w", err)
	}
	if spec.Timeout > 0 {
		time.AfterFunc(spec.Timeout, func() {
			fmt.Fprintf(os.Stderr, "loadgen worker %d: -timeout %v reached, exiting\n", spec.Index, spec.Timeout)
			os.Exit(2)
		})
	}
	var outMu sync.Mutex
	out := json.NewEncoder(stdout)
	send := func(e event) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = out.Encode(e)
	}
	f, err := newFleet(spec)
	if err != nil {
		send(event{Type: "error", Error: err.Error()})
		return err
	}
	defer f.close()
	stopProgress := make(chan struct{})
	var ticking sync.WaitGroup
	ticking.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				p := f.progress()
				send(event{Type: "progress", Progress: &p})
			}
		}
	})
	defer func() {
		close(stopProgress)
		ticking.Wait()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Commands are read while connecting, so that a coordinator that goes away (EOF)
	// ends the worker at once.
	cmds := make(chan command)
	go func() {
		defer close(cmds)
		for {
			var c command
			if err := in.Decode(&c); err != nil {
				cancel()
				return
			}
			cmds <- c
		}
	}()
	rep := f.connect(ctx)
	send(event{Type: "ready", Ready: &rep})
	for c := range cmds {
		switch c.Cmd {
		case "load":
			f.startLoad()
		case "mark":
			m := f.mark()
			send(event{Type: "mark", Mark: &m})
		case "stop":
			res := f.stop(c.LastSeq)
			send(event{Type: "result", Result: &res})
		default:
			send(event{Type: "error", Error: "unknown command " + c.Cmd})
		}
	}
	return nil
}

// workerPart is a worker process seen from the coordinator.
type workerPart struct {
	child *proc.Child
	stdin io.WriteCloser
	enc   *json.Encoder

	mu     sync.Mutex
	last   progress
	failed string // an "error" event, or how the worker ended

	readyCh  chan readyReport
	resultCh chan partResult
	markCh   chan mark
	done     chan struct{} // stdout reached EOF
}

// startWorker re-executes this program as a worker for spec. Its stderr is ours.
func startWorker(self string, spec partSpec, stderr io.Writer) (*workerPart, error) {
	cmd := exec.Command(self, roleFlag+roleWorker)
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
		return nil, fmt.Errorf("starting worker %d: %w", spec.Index, err)
	}
	w := &workerPart{
		child: child, stdin: stdin, enc: json.NewEncoder(stdin),
		readyCh: make(chan readyReport, 1), resultCh: make(chan partResult, 1), markCh: make(chan mark, 1), done: make(chan struct{}),
	}
	go w.read(stdout)
	if err := w.enc.Encode(spec); err != nil {
		w.close()
		return nil, fmt.Errorf("worker %d: %w", spec.Index, err)
	}
	return w, nil
}

func (w *workerPart) read(stdout io.Reader) {
	defer close(w.done)
	dec := json.NewDecoder(bufio.NewReader(stdout))
	for {
		var e event
		if err := dec.Decode(&e); err != nil {
			return
		}
		switch {
		case e.Progress != nil:
			w.mu.Lock()
			w.last = *e.Progress
			w.mu.Unlock()
		case e.Ready != nil:
			w.mu.Lock()
			w.last = e.Ready.Progress
			w.mu.Unlock()
			w.readyCh <- *e.Ready
		case e.Result != nil:
			w.resultCh <- *e.Result
		case e.Mark != nil:
			w.markCh <- *e.Mark
		case e.Error != "":
			w.mu.Lock()
			w.failed = e.Error
			w.mu.Unlock()
		}
	}
}

func (w *workerPart) pid() int { return w.child.Cmd.Process.Pid }

func (w *workerPart) progress() progress {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// gone describes a worker that ended before answering.
func (w *workerPart) gone() error {
	w.mu.Lock()
	msg := w.failed
	w.mu.Unlock()
	if msg == "" {
		<-w.child.Done()
		msg = fmt.Sprintf("exited (%v)", w.child.Err())
	}
	return fmt.Errorf("worker (pid %d): %s", w.pid(), msg)
}

func (w *workerPart) waitReady(ctx context.Context) (readyReport, error) {
	select {
	case r := <-w.readyCh:
		return r, nil
	case <-w.done:
		return readyReport{}, w.gone()
	case <-ctx.Done():
		return readyReport{}, ctx.Err()
	}
}

func (w *workerPart) startLoad() error { return w.enc.Encode(command{Cmd: "load"}) }

func (w *workerPart) mark(ctx context.Context) (mark, error) {
	if err := w.enc.Encode(command{Cmd: "mark"}); err != nil {
		return mark{}, errors.Join(err, w.gone())
	}
	select {
	case m := <-w.markCh:
		return m, nil
	case <-w.done:
		return mark{}, w.gone()
	case <-ctx.Done():
		return mark{}, ctx.Err()
	}
}

func (w *workerPart) stop(ctx context.Context, lastSeq []int64) (partResult, error) {
	if err := w.enc.Encode(command{Cmd: "stop", LastSeq: lastSeq}); err != nil {
		return partResult{}, errors.Join(err, w.gone())
	}
	select {
	case r := <-w.resultCh:
		return r, nil
	case <-w.done:
		return partResult{}, w.gone()
	case <-ctx.Done():
		return partResult{}, ctx.Err()
	}
}

// close ends the worker: EOF on its stdin makes it close its connections and exit.
func (w *workerPart) close() {
	w.stdin.Close()
	if err := w.child.Wait(10 * time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: worker %d: %v\n", w.pid(), err)
	}
	<-w.done
}
