package brokerkit

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Messages of one topic arrive in Push order and never overlap; topics run in parallel.
func TestDispatcherOrderPerTopic(t *testing.T) {
	const topics, per = 8, 500
	var mu sync.Mutex
	next := make(map[string]int)
	busy := make(map[string]*atomic.Int32)
	for k := range topics {
		busy[fmt.Sprint(k)] = new(atomic.Int32)
	}
	var overlaps, parallel, running atomic.Int32
	d := NewDispatcher(Limits{Workers: 4}, func(topic string, data []byte) {
		if busy[topic].Add(1) != 1 {
			overlaps.Add(1)
		}
		if running.Add(1) > 1 {
			parallel.Store(1)
		}
		n, _ := strconv.Atoi(string(data))
		mu.Lock()
		if next[topic] != n {
			t.Errorf("topic %s: got %d, want %d", topic, n, next[topic])
		}
		next[topic] = n + 1
		mu.Unlock()
		if n%50 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
		running.Add(-1)
		busy[topic].Add(-1)
	})
	defer d.Close()
	for i := range per {
		for k := range topics {
			if !d.Push(fmt.Sprint(k), []byte(strconv.Itoa(i))) {
				t.Fatal("push refused under the limits")
			}
		}
	}
	waitFor(t, "every message delivered", func() bool { return d.Delivered() == topics*per })
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping deliveries for one topic", overlaps.Load())
	}
	if runtime.GOMAXPROCS(0) > 1 && parallel.Load() == 0 {
		t.Log("no two topics were delivered at the same time (possible on a busy machine)")
	}
	if d.Waiting() != 0 {
		t.Fatalf("%d still waiting", d.Waiting())
	}
}

// Past MaxMessages or MaxBytes Push drops and counts; after delivery there is room again.
func TestDispatcherLimits(t *testing.T) {
	release := make(chan struct{})
	d := NewDispatcher(Limits{Workers: 1, MaxMessages: 3, MaxBytes: 10}, func(string, []byte) { <-release })
	defer d.Close()
	for i, c := range []struct {
		data string
		ok   bool
	}{{"aaaa", true}, {"bbbb", true}, {"ccc", false}, {"cc", true}, {"d", false}} {
		if got := d.Push("t", []byte(c.data)); got != c.ok {
			t.Fatalf("push %d (%q): %v, want %v", i, c.data, got, c.ok)
		}
	}
	if d.Dropped() != 2 {
		t.Fatalf("dropped %d, want 2", d.Dropped())
	}
	close(release)
	waitFor(t, "queue drained", func() bool { return d.Waiting() == 0 })
	if !d.Push("t", []byte("e")) {
		t.Fatal("push refused after the queue drained")
	}
}

// Close waits for a running deliver, drops the rest, and nothing is delivered after it.
func TestDispatcherClose(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var after atomic.Bool
	var closed atomic.Bool
	d := NewDispatcher(Limits{Workers: 2}, func(topic string, data []byte) {
		if closed.Load() {
			after.Store(true)
		}
		if string(data) == "slow" {
			close(started)
			<-release
		}
	})
	d.Push("a", []byte("slow"))
	for range 100 {
		d.Push("a", []byte("x"))
	}
	<-started
	done := make(chan struct{})
	go func() {
		d.Close()
		closed.Store(true)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Close returned while a deliver was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if after.Load() {
		t.Fatal("deliver ran after Close returned")
	}
	if d.Push("a", []byte("late")) {
		t.Fatal("Push accepted after Close")
	}
}

// Workers exist only while there is work.
func TestDispatcherNoIdleGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	d := NewDispatcher(Limits{}, func(string, []byte) {})
	defer d.Close()
	for i := range 1000 {
		d.Push(strconv.Itoa(i%10), []byte("x"))
	}
	waitFor(t, "delivery", func() bool { return d.Delivered() == 1000 })
	waitFor(t, "workers gone", func() bool { return runtime.NumGoroutine() <= before })
}

func TestNodeID(t *testing.T) {
	a, b := NodeID(), NodeID()
	if len(a) != 16 || a == b {
		t.Fatalf("NodeID %q, %q: want two different 16-character IDs", a, b)
	}
}
