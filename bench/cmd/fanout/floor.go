package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

// FloorResult is what the floor writer reports (one JSON line).
type FloorResult struct {
	Conns   int     `json:"conns"`
	Seconds float64 `json:"seconds"`
	Writes  int64   `json:"writes"` // in the measured window
	CPUNs   int64   `json:"cpu_ns"` // the writer's utime+stime in the window
}

// runSink accepts -subs connections on -addr and counts what arrives; every
// time another -subs*-frame bytes have arrived (one round) it writes one byte
// on the control connection (-ctl). It exits when the control connection
// closes.
func runSink() error {
	n, size := *subs, *frame
	ln, err := net.Listen("tcp", *addrFlag)
	if err != nil {
		return err
	}
	cln, err := net.Listen("tcp", *ctlAddr)
	if err != nil {
		return err
	}
	fmt.Println("LISTENING")
	ctl, err := cln.Accept()
	if err != nil {
		return err
	}
	epfds := make([]int, 2)
	for i := range epfds {
		if epfds[i], err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
			return err
		}
	}
	var total atomic.Int64
	round := int64(n * size)
	for i := range epfds {
		go func(epfd int) {
			events := make([]syscall.EpollEvent, 512)
			buf := make([]byte, 64<<10)
			for {
				k, err := syscall.EpollWait(epfd, events, -1)
				if err != nil {
					continue // EINTR
				}
				for _, ev := range events[:k] {
					m, _ := syscall.Read(int(ev.Fd), buf)
					if m <= 0 {
						if m == 0 {
							_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
						}
						continue
					}
					after := total.Add(int64(m))
					for r := (after-int64(m))/round + 1; r <= after/round; r++ {
						_, _ = ctl.Write([]byte{1})
					}
				}
			}
		}(epfds[i])
	}
	go func() {
		for i := 0; i < n; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fd, err := wsfleet.Detach(c)
			c.Close()
			if err != nil {
				continue
			}
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
			_ = syscall.EpollCtl(epfds[i%len(epfds)], syscall.EPOLL_CTL_ADD, fd, &ev)
		}
	}()
	var b [1]byte
	_, _ = ctl.Read(b[:]) // EOF when the writer is done
	return nil
}

// runWriter holds -subs connections to the sink at -addr and writes one
// -frame-byte buffer to each per round, with -window rounds in flight
// (acknowledged on the control connection -ctl), or -rate rounds per second.
// It prints START, END and RESULT <json> like the client.
func runWriter() error {
	n := *subs
	ctl, err := net.Dial("tcp", *ctlAddr)
	if err != nil {
		return err
	}
	defer ctl.Close()
	fds := make([]int, n)
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, *dialConc)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: wsfleet.SourceIPs[i%len(wsfleet.SourceIPs)]}, Timeout: 10 * time.Second}
			c, err := d.DialContext(context.Background(), "tcp", *addrFlag)
			if err == nil {
				fds[i], err = wsfleet.Detach(c)
				c.Close()
			}
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}

	acks := make(chan struct{}, 1<<16)
	go func() {
		buf := make([]byte, 256)
		for {
			k, err := ctl.Read(buf)
			for range k {
				acks <- struct{}{}
			}
			if err != nil {
				close(acks)
				return
			}
		}
	}()
	buf := make([]byte, *frame)
	cpuSelf := func() int64 { u, s := srvstats.CPUSelf(); return u + s }
	var (
		res      = FloorResult{Conns: n}
		writes   int64
		rounds   int64
		acked    int64
		start    = time.Now()
		t0       = start.Add(*warmup)
		t1       = t0.Add(*duration)
		started  bool
		mt0      time.Time
		w0, cpu0 int64
	)
	for {
		now := time.Now()
		if !started && !now.Before(t0) {
			started = true
			mt0, w0, cpu0 = now, writes, cpuSelf()
			fmt.Println("START")
		}
		if !now.Before(t1) {
			res.CPUNs = cpuSelf() - cpu0
			res.Seconds = now.Sub(mt0).Seconds()
			res.Writes = writes - w0
			fmt.Println("END")
			break
		}
		if *rate > 0 {
			next := start.Add(time.Duration(float64(rounds) / *rate * float64(time.Second)))
			if wait := next.Sub(now); wait > 0 {
				time.Sleep(min(wait, t1.Sub(now)))
				continue
			}
		} else {
			for rounds-acked >= int64(*window) {
				select {
				case _, ok := <-acks:
					if !ok {
						return errors.New("sink closed the control connection")
					}
					acked++
				case <-time.After(5 * time.Second):
					return fmt.Errorf("no ack for round %d after 5s", acked+1)
				}
			}
		}
		for _, fd := range fds {
			if err := wsfleet.WriteAll(fd, buf, 5*time.Second); err != nil {
				return err
			}
			writes++
		}
		rounds++
	}
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
	return nil
}
