package pool

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Task is a unit of work run by a Pool.
type Task interface {
	// Run executes on a worker goroutine. It may block; a blocked Run holds one worker.
	Run()
}

// Pool runs Tasks on worker goroutines. A task goes to an idle worker if there is one, or
// starts a new worker while fewer than the eager count run (a few per CPU); otherwise it
// waits in a FIFO queue. Short tasks are served faster by the running workers than by new
// goroutines, so the pool only grows further when the queue makes no progress because
// every worker is blocked: a task marks the code that may block (a user's callback that
// calls a database, say) with Block and Unblock, and each millisecond without a finished
// task while tasks wait and every worker is inside such code, the pool doubles its
// workers, up to the cap. Workers that are merely slow — long tasks, or short of CPU under
// a flood — are not blocked, and more goroutines would only make the queue's wait longer.
// A worker idle for longer than the idle timeout exits. Submit never blocks.
//
// All methods are safe for concurrent use.
type Pool struct {
	maxWorkers  int
	eager       int
	idleTimeout time.Duration

	finished atomic.Uint64 // tasks run to completion, for the stall check
	blocked  atomic.Int64  // workers between Block and Unblock right now
	lastSeen uint64        // finished at the previous stall check; guarded by mu
	stallArm bool          // a stall check is pending; guarded by mu

	mu         sync.Mutex
	queue      fifo      // submitted tasks
	later      fifo      // requeued tasks: served after queue, but at least one in laterEvery
	skipped    int       // tasks taken from queue while later was waiting
	laterOn    int       // workers running a requeued task now
	laterMax   int       // at most this many workers run requeued tasks at once…
	laterExtra int       // …plus this many, granted while requeued tasks stall behind blocked ones
	laterDone  uint64    // requeued tasks run to completion
	laterSeen  uint64    // laterDone at the previous stall check
	laterTicks int       // stall checks in a row with the share full and no requeued task done
	idle       []*worker // parked workers, most recently parked last
	workers    int       // running workers
	closed     bool
	done       sync.WaitGroup
}

type worker struct {
	wake  chan Task // capacity 1: a task handed over, or nil when the pool closes
	later bool      // running a requeued task; guarded by Pool.mu
}

// New returns a pool that runs at most maxWorkers tasks at once (at least 1) and lets a
// worker exit after idleTimeout without work (a non-positive value means 10 s).
func New(maxWorkers int, idleTimeout time.Duration) *Pool {
	if maxWorkers < 1 {
		maxWorkers = 1
	}
	if idleTimeout <= 0 {
		idleTimeout = 10 * time.Second
	}
	return &Pool{
		maxWorkers:  maxWorkers,
		eager:       min(maxWorkers, 4*runtime.GOMAXPROCS(0)),
		laterMax:    max(1, runtime.GOMAXPROCS(0)-1),
		idleTimeout: idleTimeout,
	}
}

// stallCheck is how long queued tasks may see no task finish before the pool grows.
const stallCheck = time.Millisecond

// Submit schedules t. It reports false, without running t, once the pool is closed.
func (p *Pool) Submit(t Task) bool { return p.submit(t, &p.queue) }

// Requeue schedules t, a task that ran its turn and has more to do, behind the tasks
// submitted with Submit: those became ready while it ran (a client's request, say) and
// should not wait for a turn of every busy task. One task in laterEvery is taken from the
// requeued ones while both kinds wait, so requeued tasks are slowed, never starved. And at
// most GOMAXPROCS-1 workers (at least one) run requeued tasks at once, not counting
// workers blocked in a callback: tasks that always have more to do (clients that keep
// their sockets full) share those cores and leave one to the rest, so the poller and
// fresh tasks find a CPU at once instead of waiting for the Go scheduler to preempt a busy
// worker. Requeue is meant to be called from t's own Run. It reports false, without
// running t, once the pool is closed.
func (p *Pool) Requeue(t Task) bool { return p.submit(t, &p.later) }

// SubmitBehind schedules t as Requeue does, behind the tasks submitted with Submit and
// within the requeued tasks' share, but from outside t's Run: a task known to be heavy
// (one that used up its last turn) that becomes ready again waits behind the light ones
// instead of taking a fresh turn ahead of them. It hands t to an idle worker when the
// share has room; it starts no worker (a busy one takes t when it is done). It reports
// false, without running t, once the pool is closed.
func (p *Pool) SubmitBehind(t Task) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.later.push(t)
	if len(p.idle) > 0 && p.laterSlotLocked() {
		w := p.popIdleLocked()
		w.wake <- p.popLaterLocked(w)
	}
	p.armStallLocked()
	return true
}

// laterEvery: while both queues have tasks, every laterEvery-th task run is a requeued one.
const laterEvery = 4

func (p *Pool) submit(t Task, q *fifo) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if q == &p.later {
		// Requeue is normally called from the task's own Run: the worker running it asks
		// for its next task right after, so nothing needs waking.
		q.push(t)
		if len(p.idle) == p.workers {
			p.kickLaterLocked() // no worker is running a task: the caller is not one
		}
		p.armStallLocked()
		p.mu.Unlock()
		return true
	}
	if len(p.idle) > 0 {
		w := p.popIdleLocked()
		p.mu.Unlock()
		w.wake <- t
		return true
	}
	if p.workers < p.eager {
		p.startLocked(t)
		p.mu.Unlock()
		return true
	}
	q.push(t)
	if p.workers < p.maxWorkers {
		p.armStallLocked()
	}
	p.mu.Unlock()
	return true
}

// armStallLocked starts the stall checks unless they run.
func (p *Pool) armStallLocked() {
	if !p.stallArm {
		p.stallArm = true
		p.lastSeen = p.finished.Load()
		p.laterSeen = p.laterDone
		time.AfterFunc(stallCheck, p.checkStall)
	}
}

// startLocked starts a worker that runs t (if not nil) first.
func (p *Pool) startLocked(t Task) { p.startWorkerLocked(newWorker(), t) }

func (p *Pool) startWorkerLocked(w *worker, t Task) {
	p.workers++
	p.done.Add(1)
	go p.work(w, t)
}

func newWorker() *worker { return &worker{wake: make(chan Task, 1)} }

// checkStall runs while tasks wait: if none finished since the last check and every
// worker is inside a task, the workers are all blocked and the pool doubles them (up to
// the cap) so waiting tasks can run.
func (p *Pool) checkStall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	waiting := p.queue.len() + p.later.len()
	if p.closed || waiting == 0 {
		p.stallArm = false
		return
	}
	// Only workers inside code marked as blocking call for more goroutines; workers short
	// of CPU (a flood, the poller and a keepalive round holding both cores) do not.
	if now := p.finished.Load(); now == p.lastSeen && p.workers < p.maxWorkers && p.blocked.Load() >= int64(p.workers) {
		for n := min(waiting, max(p.workers, 1), p.maxWorkers-p.workers); n > 0; n-- {
			p.startLocked(nil)
		}
	}
	p.checkLaterLocked()
	p.lastSeen = p.finished.Load()
	time.AfterFunc(stallCheck, p.checkStall)
}

// laterStallTicks: requeued tasks that wait this many stall checks in a row with the share
// full, none of them finishing and some worker blocked in a callback get one more slot.
const laterStallTicks = 10

// checkLaterLocked lets the requeued tasks' share grow by one when the tasks holding it
// seem blocked (a user's callback waiting on a database, say): for laterStallTicks
// milliseconds none finished while others waited and a worker was inside Block. The
// extra slots go when no requeued task waits.
func (p *Pool) checkLaterLocked() {
	if p.later.len() == 0 {
		p.laterExtra, p.laterTicks = 0, 0
		p.laterSeen = p.laterDone
		return
	}
	if p.laterDone != p.laterSeen || p.laterSlotLocked() || p.blocked.Load() == 0 {
		p.laterTicks = 0
	} else if p.laterTicks++; p.laterTicks >= laterStallTicks {
		p.laterTicks = 0
		p.laterExtra++
		p.kickLaterLocked()
	}
	p.laterSeen = p.laterDone
}

// Block marks the calling task as entering code that may block (a user's callback); the
// task must call Unblock when it leaves that code. Only while every worker is so marked
// and no task finishes does the pool grow past its eager size; and only while requeued
// tasks stall behind blocked ones does their share grow (checkLaterLocked).
func (p *Pool) Block() { p.blocked.Add(1) }

// kickLaterLocked hands a waiting requeued task to an idle or new worker if the requeued
// tasks' share allows one more.
func (p *Pool) kickLaterLocked() {
	if p.closed || p.later.len() == 0 || !p.laterSlotLocked() {
		return
	}
	if len(p.idle) > 0 {
		w := p.popIdleLocked()
		w.wake <- p.popLaterLocked(w)
		return
	}
	if p.workers < p.maxWorkers {
		w := newWorker()
		p.startWorkerLocked(w, p.popLaterLocked(w))
	}
}

// popIdleLocked takes the most recently parked worker off the idle list (there is one).
func (p *Pool) popIdleLocked() *worker {
	n := len(p.idle)
	w := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return w
}

// laterSlotLocked reports whether one more worker may run a requeued task.
func (p *Pool) laterSlotLocked() bool {
	return p.laterOn < p.laterMax+p.laterExtra
}

// popLaterLocked takes the oldest requeued task for w.
func (p *Pool) popLaterLocked(w *worker) Task {
	p.laterOn++
	w.later = true
	return p.later.pop()
}

// Unblock ends what Block began.
func (p *Pool) Unblock() { p.blocked.Add(-1) }

// Workers reports the number of running worker goroutines.
func (p *Pool) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}

// Queued reports the number of tasks waiting for a worker.
func (p *Pool) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queue.len() + p.later.len()
}

// Close stops accepting tasks, lets the workers finish what is queued, and waits for every
// worker to exit.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.done.Wait()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.workers -= len(idle)
	p.mu.Unlock()
	for _, w := range idle {
		w.wake <- nil
	}
	p.done.Wait()
}

func (p *Pool) work(w *worker, t Task) {
	defer p.done.Done()
	timer := time.NewTimer(p.idleTimeout)
	defer timer.Stop()
	for {
		if t != nil {
			t.Run()
			p.finished.Add(1)
		}
		t = p.next(w)
		if t != nil {
			continue
		}
		// Parked: wait for a hand-over, the idle timeout, or Close.
		timer.Reset(p.idleTimeout)
		select {
		case t = <-w.wake:
			if t == nil {
				return // pool closed while parked
			}
		case <-timer.C:
			if p.retire(w) {
				return
			}
			// Submit picked this worker just as the timer fired: the task is on its way.
			if t = <-w.wake; t == nil {
				return
			}
		}
	}
}

// next returns the next queued task, or parks w (returning nil) when there is none. When
// the pool is closed and the queue is empty it retires w, feeds its wake channel a nil so
// the caller's wait ends at once, and returns nil.
func (p *Pool) next(w *worker) Task {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.later {
		w.later = false
		p.laterOn--
		p.laterDone++
	}
	if p.later.len() > 0 && p.laterSlotLocked() && (p.queue.len() == 0 || p.skipped >= laterEvery-1) {
		p.skipped = 0
		return p.popLaterLocked(w)
	}
	if p.queue.len() > 0 {
		if p.later.len() > 0 {
			p.skipped++
		}
		return p.queue.pop()
	}
	if p.closed {
		p.workers--
		w.wake <- nil
		return nil
	}
	p.idle = append(p.idle, w)
	return nil
}

// retire removes w from the idle list after its timeout. It reports false when w is no
// longer idle because Submit (or Close) has just handed it something.
func (p *Pool) retire(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, iw := range p.idle {
		if iw == w {
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			p.workers--
			return true
		}
	}
	return false
}

// fifo is a queue of tasks: tasks[head:] wait, oldest first.
type fifo struct {
	tasks []Task
	head  int
}

func (q *fifo) len() int { return len(q.tasks) - q.head }

func (q *fifo) push(t Task) { q.tasks = append(q.tasks, t) }

func (q *fifo) pop() Task {
	t := q.tasks[q.head]
	q.tasks[q.head] = nil
	q.head++
	if q.head == len(q.tasks) {
		q.tasks, q.head = q.tasks[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.tasks) {
		n := copy(q.tasks, q.tasks[q.head:])
		clear(q.tasks[n:])
		q.tasks, q.head = q.tasks[:n], 0
	}
	return t
}
