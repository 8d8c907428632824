//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/wsfleet"
	"github.com/livepoll/livepoll/live"
)

// inProcessServer serves loadgen's app from this process.
func inProcessServer(t *testing.T) (*live.Server, string) {
	t.Helper()
	h, srv := newApp(live.Options{})
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

func startFleet(t *testing.T, spec partSpec) (*fleet, readyReport) {
	t.Helper()
	f, err := newFleet(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	rep := f.connect(context.Background())
	if n := int64(spec.To - spec.From); rep.Progress.Ready != n {
		t.Fatalf("ready %+v, want %d", rep, n)
	}
	return f, rep
}

func TestFleetCountsGapsRepeatsAndTheMissingTail(t *testing.T) {
	t.Parallel()
	_, url := inProcessServer(t)
	f, _ := startFleet(t, partSpec{URL: url, From: 0, To: 20, Scenario: scenarioPublish, Topics: 2,
		ConnectRate: 2000, Concurrency: 5, Settle: 5 * time.Second, Drain: 300 * time.Millisecond})
	fd, leftover, err := wsfleet.Dial(context.Background(), url, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := &wsfleet.Conn{FD: fd, ID: -1}
	if err := f.loops[0].Add(pub, leftover); err != nil {
		t.Fatal(err)
	}
	// Topic t0 (10 subscribers) gets 1, 2, 4: seq 3 is a gap, and 5 (the last published,
	// as the coordinator will say) never comes. Topic t1 gets 1, 2, 3 and 2 again.
	sends := []struct {
		topic int
		seq   int64
	}{{0, 1}, {0, 2}, {0, 4}, {1, 1}, {1, 2}, {1, 3}, {1, 2}}
	for _, s := range sends {
		frame, _ := publishFrame(nil, nil, topicName(s.topic), s.seq, time.Now().UnixNano(), 0)
		if err := pub.Write(frame, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.deliveries.Load() < 60 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the repeats arrive after the last new message
	res := f.stop([]int64{5, 3})
	if res.Progress.Deliveries != 60 {
		t.Errorf("deliveries %d, want 60", res.Progress.Deliveries)
	}
	if res.Expected != 80 || res.Lost != 20 || res.Dup != 10 || !res.DrainFailed {
		t.Errorf("expected %d lost %d dup %d drain failed %v; want 80, 20 (a gap and the tail on 10 subscribers), 10, true",
			res.Expected, res.Lost, res.Dup, res.DrainFailed)
	}
	if res.Latency.Count() != 60 {
		t.Errorf("latency samples %d, want 60", res.Latency.Count())
	}
}

func TestFleetCountsServerClosesApart(t *testing.T) {
	t.Parallel()
	srv, url := inProcessServer(t)
	f, _ := startFleet(t, partSpec{URL: url, From: 100, To: 110, Scenario: scenarioSubscribe, Topics: 3,
		ConnectRate: 2000, Concurrency: 5, Settle: 5 * time.Second})
	srv.Close() // every session gets close code 1001
	deadline := time.Now().Add(5 * time.Second)
	for f.serverClosed.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res := f.stop(nil)
	if res.Progress.ServerClosed != 10 || res.Progress.Open != 0 {
		t.Errorf("progress %+v, want 10 closed by the server, none open", res.Progress)
	}
	if e := res.Errors["server_close_1001"]; e.Count != 10 {
		t.Errorf("errors %+v, want 10 server_close_1001", res.Errors)
	}
	if res.Lost != 0 {
		t.Errorf("lost %d: subscribe owes no messages", res.Lost)
	}
	if len(res.ServerClosedBy) != 1 || res.ServerClosedBy["close_1001"] != 10 {
		t.Errorf("server_closed_by %v, want close_1001: 10", res.ServerClosedBy)
	}
}

func TestFleetCountsAKilledConnectionOnce(t *testing.T) {
	t.Parallel()
	_, url := inProcessServer(t)
	f, _ := startFleet(t, partSpec{URL: url, From: 0, To: 2, Scenario: scenarioIdle, Topics: 1,
		ConnectRate: 2000, Concurrency: 2, Settle: time.Second})
	fd, leftover, err := wsfleet.Dial(context.Background(), url, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := &wsfleet.Conn{FD: fd, ID: -1}
	if err := f.loops[0].Add(pub, leftover); err != nil {
		t.Fatal(err)
	}
	errBlocked := fmt.Errorf("write: %w", wsfleet.ErrWriteBlocked)
	f.loops[0].Kill(f.conns[0].Load(), errBlocked)
	f.loops[0].Kill(pub, errBlocked)
	deadline := time.Now().Add(5 * time.Second)
	for f.serverClosed.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res := f.stop(nil)
	if e := res.Errors["write_blocked"]; e.Count != 1 {
		t.Errorf("write_blocked counted %d times, want 1: %+v", e.Count, res.Errors)
	}
	if e := res.Errors["publisher_write_blocked"]; e.Count != 1 {
		t.Errorf("publisher_write_blocked counted %d times, want 1: %+v", e.Count, res.Errors)
	}
	if len(res.ServerClosedBy) != 2 || res.ServerClosedBy["timeout"] != 1 || res.ServerClosedBy["publisher_timeout"] != 1 {
		t.Errorf("server_closed_by %v, want timeout and publisher_timeout once each", res.ServerClosedBy)
	}
	if res.Progress.Open != 1 {
		t.Errorf("%d open, want 1 (publishers are not counted)", res.Progress.Open)
	}
}
