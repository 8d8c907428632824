package wsfleet

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// within returns what f returns, failing t if that takes more than 5 s.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Paced did not return within 5 s")
		return nil
	}
}

// Every index of [from, to) is done once, on no more than concurrency goroutines.
func TestPacedDoesEachIndexOnce(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	var running, most atomic.Int64
	err := within(t, func() error {
		return Paced(context.Background(), 10, 110, 3, 0, func(ctx context.Context, i int) error {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 100 {
		t.Fatalf("%d indexes done, want 100", len(seen))
	}
	for i := 10; i < 110; i++ {
		if seen[i] != 1 {
			t.Fatalf("index %d done %d times", i, seen[i])
		}
	}
	if m := most.Load(); m > 3 {
		t.Errorf("%d calls at once, want at most 3", m)
	}
}

// 100 calls at 1000 a second take at least 90 ms: ten batches of ten, 10 ms apart.
func TestPacedKeepsTheRate(t *testing.T) {
	var calls atomic.Int64
	start := time.Now()
	if err := within(t, func() error {
		return Paced(context.Background(), 0, 100, 4, 1000, func(context.Context, int) error {
			calls.Add(1)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Errorf("100 calls at 1000/s took %v, want at least 90 ms", took)
	}
	if calls.Load() != 100 {
		t.Errorf("%d calls, want 100", calls.Load())
	}
}

// The first error stops the feed, cancels the other calls' context and is returned.
func TestPacedStopsOnTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int64
	err := within(t, func() error {
		return Paced(context.Background(), 0, 1_000_000, 2, 0, func(ctx context.Context, i int) error {
			calls.Add(1)
			if ctx.Err() != nil {
				return errors.New("after the first error: dropped")
			}
			if i == 5 {
				return boom
			}
			return nil
		})
	})
	if err != boom {
		t.Fatalf("err %v, want %v", err, boom)
	}
	if n := calls.Load(); n >= 1_000_000 {
		t.Errorf("%d calls: the feed did not stop", n)
	}
}

// A caller's cancel ends Paced without an error; another cause, or a deadline, is
// returned.
func TestPacedWhenCtxEnds(t *testing.T) {
	block := func(ctx context.Context, _ int) error {
		<-ctx.Done()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := within(t, func() error { return Paced(ctx, 0, 10, 2, 0, block) }); err != nil {
		t.Errorf("cancelled: err %v, want nil", err)
	}

	why := errors.New("why")
	cctx, ccancel := context.WithCancelCause(context.Background())
	time.AfterFunc(20*time.Millisecond, func() { ccancel(why) })
	if err := within(t, func() error { return Paced(cctx, 0, 10, 2, 0, block) }); err != why {
		t.Errorf("cancelled with a cause: err %v, want %v", err, why)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if err := within(t, func() error { return Paced(dctx, 0, 10, 2, 0, block) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err %v, want context.DeadlineExceeded", err)
	}
}

// Retry stops at the first success, gives each call its own timeout, returns the last
// error when every attempt fails, and makes no call once ctx has ended.
func TestRetry(t *testing.T) {
	calls := 0
	err := within(t, func() error {
		return Retry(context.Background(), 3, time.Minute, func(ctx context.Context) error {
			calls++
			if _, ok := ctx.Deadline(); !ok {
				t.Error("a call without a deadline")
			}
			if calls < 2 {
				return errors.New("not yet")
			}
			return nil
		})
	})
	if err != nil || calls != 2 {
		t.Errorf("success on the second call: err %v after %d calls", err, calls)
	}

	calls = 0
	err = within(t, func() error {
		return Retry(context.Background(), 2, 10*time.Millisecond, func(ctx context.Context) error {
			calls++
			<-ctx.Done()
			return ctx.Err()
		})
	})
	if !errors.Is(err, context.DeadlineExceeded) || calls != 2 {
		t.Errorf("every call timing out: err %v after %d calls", err, calls)
	}

	calls = 0
	err = within(t, func() error {
		return Retry(context.Background(), 0, time.Minute, func(context.Context) error {
			calls++
			return nil
		})
	})
	if err != nil || calls != 1 {
		t.Errorf("attempts 0: err %v after %d calls, want one call", err, calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	err = within(t, func() error {
		return Retry(ctx, 3, time.Minute, func(context.Context) error { calls++; return nil })
	})
	if !errors.Is(err, context.Canceled) || calls != 0 {
		t.Errorf("ctx ended: err %v after %d calls, want context.Canceled and no call", err, calls)
	}
}
