package pool

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

type funcTask func()

func (f funcTask) Run() { f() }

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

func TestPoolGrowsToCapAndQueues(t *testing.T) {
	p := New(3, time.Hour)
	defer p.Close()
	release := make(chan struct{})
	var started, finished atomic.Int32
	for range 5 {
		p.Submit(funcTask(func() {
			started.Add(1)
			<-release
			finished.Add(1)
		}))
	}
	waitFor(t, "3 running tasks", func() bool { return started.Load() == 3 })
	if w, q := p.Workers(), p.Queued(); w != 3 || q != 2 {
		t.Fatalf("workers=%d queued=%d, want 3 and 2", w, q)
	}
	close(release)
	waitFor(t, "all tasks", func() bool { return finished.Load() == 5 })
}

func TestPoolShrinksWhenIdle(t *testing.T) {
	p := New(8, 20*time.Millisecond)
	defer p.Close()
	var wg sync.WaitGroup
	block := make(chan struct{})
	for range 8 {
		wg.Add(1)
		p.Submit(funcTask(func() { defer wg.Done(); <-block }))
	}
	waitFor(t, "8 workers", func() bool { return p.Workers() == 8 })
	close(block)
	wg.Wait()
	waitFor(t, "workers to retire", func() bool { return p.Workers() == 0 })
	// A retired pool still runs new work.
	done := make(chan struct{})
	p.Submit(funcTask(func() { close(done) }))
	if !closedWithin(done, 5*time.Second) {
		t.Fatal("task after shrink did not run")
	}
}

func TestPoolCloseRunsQueuedAndRefusesNew(t *testing.T) {
	p := New(1, time.Hour)
	var ran atomic.Int32
	block := make(chan struct{})
	p.Submit(funcTask(func() { <-block; ran.Add(1) }))
	for range 10 {
		p.Submit(funcTask(func() { ran.Add(1) }))
	}
	go func() { time.Sleep(10 * time.Millisecond); close(block) }()
	p.Close()
	if n := ran.Load(); n != 11 {
		t.Fatalf("ran %d tasks before Close returned, want 11", n)
	}
	if p.Submit(funcTask(func() {})) {
		t.Fatal("Submit after Close reported true")
	}
	p.Close() // second Close is harmless
}

// orderedOwner appends raised values to a log from its runs; it checks that runs never
// overlap and that every raise is seen.
type orderedOwner struct {
	sig     Signal
	pool    *Pool
	running atomic.Int32
	overlap atomic.Bool
	seen    atomic.Int64
}

func (o *orderedOwner) Run() {
	for {
		if o.running.Add(1) != 1 {
			o.overlap.Store(true)
		}
		bits := o.sig.Take()
		if bits != 0 {
			o.seen.Add(1)
		}
		o.running.Add(-1)
		if o.sig.Done() {
			return
		}
	}
}

func TestSignalRunsOwnerOnceAtATime(t *testing.T) {
	p := New(16, time.Hour)
	defer p.Close()
	owners := make([]*orderedOwner, 50)
	for i := range owners {
		owners[i] = &orderedOwner{pool: p}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				o := owners[(i+g)%len(owners)]
				if o.sig.Raise(1 << (i % 4)) {
					p.Submit(o)
				}
			}
		}()
	}
	wg.Wait()
	for i, o := range owners {
		waitFor(t, "owner to go idle", func() bool { return o.sig.v.Load() == 0 })
		if o.overlap.Load() {
			t.Fatalf("owner %d ran concurrently with itself", i)
		}
		if o.seen.Load() == 0 {
			t.Fatalf("owner %d never saw its bits", i)
		}
	}
}

func TestSignalBits(t *testing.T) {
	var s Signal
	if !s.Raise(1) {
		t.Fatal("first Raise must ask for a submit")
	}
	if s.Raise(2) || s.Raise(1) {
		t.Fatal("Raise while scheduled must not ask for a submit")
	}
	if got := s.Take(); got != 3 {
		t.Fatalf("Take = %b, want 11", got)
	}
	s.Raise(4)
	if s.Done() {
		t.Fatal("Done must fail while bits are pending")
	}
	if got := s.Take(); got != 4 {
		t.Fatalf("Take = %b, want 100", got)
	}
	if !s.Done() {
		t.Fatal("Done must succeed with nothing pending")
	}
	if !s.Raise(1) {
		t.Fatal("Raise after Done must ask for a submit")
	}
}

func TestGetPutClasses(t *testing.T) {
	for _, n := range []int{0, 1, 64, 65, 1000, 4096, 4097, 1 << 20, 1 << 24} {
		b := Get(n)
		if len(*b) != n {
			t.Fatalf("Get(%d) len %d", n, len(*b))
		}
		if c := cap(*b); c < n || c&(c-1) != 0 {
			t.Fatalf("Get(%d) cap %d, want a power of two >= n", n, c)
		}
		Put(b)
	}
	big := Get(1<<24 + 1)
	if len(*big) != 1<<24+1 {
		t.Fatal("oversized Get has wrong length")
	}
	Put(big) // dropped, must not panic
}

func TestSharedRefcount(t *testing.T) {
	f := NewShared(100)
	if len(f.B) != 100 {
		t.Fatalf("len %d", len(f.B))
	}
	f.Retain()
	f.Release()
	if f.B == nil {
		t.Fatal("released while a reference remained")
	}
	f.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("over-release did not panic")
		}
	}()
	g := NewShared(1)
	g.Release()
	g.Release()
}

func BenchmarkSharedRetainRelease(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		f := NewShared(128)
		f.Retain()
		f.Release()
		f.Release()
	}
}

func BenchmarkPoolSubmit(b *testing.B) {
	p := New(4, time.Second)
	defer p.Close()
	var wg sync.WaitGroup
	task := funcTask(func() { wg.Done() })
	b.ReportAllocs()
	for b.Loop() {
		wg.Add(1)
		p.Submit(task)
	}
	wg.Wait()
}

// Blocked workers make the pool grow past its eager count, up to the cap.
func TestPoolGrowsWhenWorkersBlock(t *testing.T) {
	p := New(64, time.Hour)
	defer p.Close()
	release := make(chan struct{})
	var running atomic.Int32
	for range 40 {
		p.Submit(funcTask(func() {
			running.Add(1)
			p.Block()
			<-release
			p.Unblock()
		}))
	}
	waitFor(t, "all 40 blocked tasks to run", func() bool { return running.Load() == 40 })
	close(release)
	if w := p.Workers(); w > 64 {
		t.Fatalf("%d workers, cap is 64", w)
	}
}

// A burst of short tasks is served by the running workers, not by thousands of new
// goroutines (18,000 pongs arriving at once grew the old pool to 1,400 workers).
func TestPoolBurstOfShortTasksStaysSmall(t *testing.T) {
	p := New(10000, time.Hour)
	defer p.Close()
	var wg sync.WaitGroup
	most := 0
	for range 20000 {
		wg.Add(1)
		p.Submit(funcTask(func() { wg.Done() }))
		if w := p.Workers(); w > most {
			most = w
		}
	}
	wg.Wait()
	t.Logf("20000 short tasks ran on at most %d workers (eager %d)", most, p.eager)
	if most > 200 {
		t.Fatalf("a burst of short tasks grew the pool to %d workers", most)
	}
}

// Long tasks that do not block (CPU work, or workers short of CPU under a flood) do not
// make the pool grow: more goroutines would not make them finish sooner.
func TestPoolDoesNotGrowForSlowTasks(t *testing.T) {
	p := New(10000, time.Hour)
	defer p.Close()
	var wg sync.WaitGroup
	most := 0
	for range 200 {
		wg.Add(1)
		p.Submit(funcTask(func() {
			defer wg.Done()
			for start := time.Now(); time.Since(start) < 3*time.Millisecond; {
			}
		}))
	}
	for done := make(chan struct{}); ; {
		go func() { wg.Wait(); close(done) }()
		for {
			most = max(most, p.Workers())
			select {
			case <-done:
				if most > p.eager {
					t.Fatalf("200 slow, unblocked tasks grew the pool to %d workers (eager %d)", most, p.eager)
				}
				return
			case <-time.After(time.Millisecond):
			}
		}
	}
}

// Requeued tasks run behind submitted ones, but one in laterEvery while both wait.
func TestPoolRequeueRunsBehindSubmittedTasks(t *testing.T) {
	p := New(1, time.Hour)
	defer p.Close()
	release := holdWorker(p)
	var order orderLog
	for i := range 3 {
		p.Requeue(order.task(fmt.Sprint("r", i)))
	}
	for i := range 7 {
		p.Submit(order.task(fmt.Sprint("s", i)))
	}
	release()
	order.wait(t, 10)
	if got, want := order.String(), "[s0 s1 s2 r0 s3 s4 s5 r1 s6 r2]"; got != want {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// holdWorker submits a task that keeps a worker of p busy until release is called, and
// returns once it runs.
func holdWorker(p *Pool) (release func()) {
	block := make(chan struct{})
	started := make(chan struct{})
	p.Submit(funcTask(func() { close(started); <-block }))
	<-started
	return func() { close(block) }
}

// orderLog records the names of the tasks made with task, in the order they ran.
type orderLog struct {
	mu    sync.Mutex
	names []string
}

func (o *orderLog) task(name string) Task {
	return funcTask(func() { o.mu.Lock(); o.names = append(o.names, name); o.mu.Unlock() })
}

// wait waits (with waitFor's deadline) until n tasks have run.
func (o *orderLog) wait(t *testing.T, n int) {
	t.Helper()
	waitFor(t, "every task", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return len(o.names) == n })
}

func (o *orderLog) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprint(o.names)
}

// requeueOnce returns a task that requeues itself on its first run and runs body on its
// second, as a session with more input than one turn does.
func requeueOnce(p *Pool, body func()) Task {
	var again bool
	var t funcTask
	t = func() {
		if !again {
			again = true
			p.Requeue(t)
			return
		}
		body()
	}
	return t
}

// At most laterMax workers run requeued tasks at once, and fresh tasks run beside them: a
// requeued task that waits for a fresh one to run would deadlock otherwise.
func TestPoolRequeuedTasksShareIsBounded(t *testing.T) {
	p := New(8, time.Hour)
	defer p.Close()
	p.mu.Lock()
	p.laterMax = 1
	p.mu.Unlock()
	var running, most atomic.Int32
	freshRan := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		p.Submit(requeueOnce(p, func() {
			defer wg.Done()
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			if i == 0 {
				if !closedWithin(freshRan, 5*time.Second) { // the fresh task must get a worker while this one runs
					t.Error("a fresh task did not run while a requeued task held its share")
				}
			} else {
				time.Sleep(2 * time.Millisecond)
			}
			running.Add(-1)
		}))
	}
	waitFor(t, "a requeued task running", func() bool { return running.Load() > 0 })
	p.Submit(funcTask(func() { close(freshRan) }))
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("requeued tasks did not all run")
	}
	if got := most.Load(); got != 1 {
		t.Fatalf("%d requeued tasks ran at once, want at most 1", got)
	}
}

// A requeued task blocked in a callback does not hold the requeued tasks' share for long:
// after laterStallTicks stall checks another one runs (the first waits for it, so a
// deadlock here fails the test).
func TestPoolBlockedRequeuedTaskFreesItsShare(t *testing.T) {
	p := New(8, time.Hour)
	defer p.Close()
	p.mu.Lock()
	p.laterMax = 1
	p.mu.Unlock()
	secondRan := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	first := requeueOnce(p, func() {
		defer wg.Done()
		p.Block()
		defer p.Unblock()
		if !closedWithin(secondRan, 5*time.Second) {
			t.Error("a second requeued task did not run while the first was blocked")
		}
	})
	p.Submit(first)
	waitFor(t, "the first task requeued and blocked", func() bool { return p.blocked.Load() == 1 })
	p.Submit(requeueOnce(p, func() { defer wg.Done(); close(secondRan) }))
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("tasks did not finish")
	}
}

// Requeue from outside any task (every worker parked) still gets the task run.
func TestPoolRequeueFromOutsideRuns(t *testing.T) {
	p := New(2, time.Hour)
	defer p.Close()
	ran := make(chan struct{})
	p.Requeue(funcTask(func() { close(ran) }))
	if !closedWithin(ran, 5*time.Second) {
		t.Fatal("a task requeued with no worker running never ran")
	}
	warm := make(chan struct{})
	p.Submit(funcTask(func() { close(warm) })) // parks a worker
	if !closedWithin(warm, 5*time.Second) {
		t.Fatal("a submitted task never ran")
	}
	waitFor(t, "the worker parked", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.idle) == p.workers })
	ran2 := make(chan struct{})
	p.Requeue(funcTask(func() { close(ran2) }))
	if !closedWithin(ran2, 5*time.Second) {
		t.Fatal("a task requeued while every worker was parked never ran")
	}
}

// SubmitBehind queues a task where Requeue does (behind submitted tasks, one in laterEvery
// while both wait), and from outside any task hands it to a parked worker at once even
// while another worker is busy (Requeue would leave it for the busy one).
func TestPoolSubmitBehind(t *testing.T) {
	p := New(2, time.Hour)
	defer p.Close()
	p.mu.Lock()
	p.eager = 1 // one worker until the order check is done
	p.mu.Unlock()
	release := holdWorker(p)
	var order orderLog
	p.SubmitBehind(order.task("b0"))
	for i := range 4 {
		p.Submit(order.task(fmt.Sprint("s", i)))
	}
	release()
	order.wait(t, 5)
	if got, want := order.String(), "[s0 s1 s2 b0 s3]"; got != want {
		t.Fatalf("order %v, want %v", got, want)
	}
	// One worker busy for good, one parked: the parked one takes the task.
	p.mu.Lock()
	p.eager = 2
	p.mu.Unlock()
	defer holdWorker(p)()
	warm := make(chan struct{})
	p.Submit(funcTask(func() { close(warm) }))
	if !closedWithin(warm, 5*time.Second) {
		t.Fatal("a submitted task never ran")
	}
	waitFor(t, "a worker parked", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.idle) == 1 && p.workers == 2 })
	ran := make(chan struct{})
	if !p.SubmitBehind(funcTask(func() { close(ran) })) {
		t.Fatal("SubmitBehind refused a task on an open pool")
	}
	if !closedWithin(ran, 5*time.Second) {
		t.Fatal("SubmitBehind left the task waiting for the busy worker")
	}
}

// SubmitBehind refuses tasks once the pool is closed.
func TestPoolSubmitBehindAfterClose(t *testing.T) {
	p := New(1, time.Hour)
	p.Close()
	if p.SubmitBehind(funcTask(func() { t.Error("ran on a closed pool") })) {
		t.Fatal("SubmitBehind took a task after Close")
	}
}

// Callbacks that only pass through Block and Unblock (an echo handler: no real blocking)
// do not widen the requeued tasks' share, nor grow the pool: many requeued tasks, each
// entering and leaving Block several times per turn, never run more than laterMax at once.
func TestPoolShareHoldsWithShortCallbacks(t *testing.T) {
	p := New(64, time.Hour)
	defer p.Close()
	p.mu.Lock()
	p.laterMax = 1
	p.mu.Unlock()
	var running, most atomic.Int32
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		p.Submit(requeueOnce(p, func() {
			defer wg.Done()
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			for range 3 {
				p.Block()
				for i := 0; i < 2000; i++ { // a little CPU, no waiting
					_ = i * i
				}
				p.Unblock()
			}
			running.Add(-1)
		}))
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("requeued tasks did not all run")
	}
	if got := most.Load(); got > 1 {
		t.Fatalf("%d requeued tasks ran at once with short callbacks, want at most 1", got)
	}
	if w := p.Workers(); w > p.eager {
		t.Fatalf("short callbacks grew the pool to %d workers (eager %d)", w, p.eager)
	}
}

// closedWithin reports whether ch is closed (or receives) within d: every wait for a
// task to run has a deadline.
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}
