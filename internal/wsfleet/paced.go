package wsfleet

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Paced calls do(ctx, i) for every i in [from, to), on concurrency goroutines (0: 1),
// starting no more than rate calls a second (0: unbounded), paced in 10 ms batches
// rather than with a timer per call. It is how DialMany (and the bench programs' wss
// fleet) spread their dials.
//
// The first error a call returns cancels the context the other calls get (their errors
// are then theirs to drop) and stops the feed; Paced returns it once every call has
// returned. If ctx ends first, Paced stops feeding and returns its cause, unless that is
// context.Canceled (the caller stopped it).
func Paced(ctx context.Context, from, to, concurrency, rate int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(1, concurrency) {
		wg.Go(func() {
			for i := range jobs {
				if err := do(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	const tick = 10 * time.Millisecond
	perTick := to - from
	if rate > 0 {
		perTick = max(1, rate/int(time.Second/tick))
	}
	next := time.Now()
feed:
	for i := from; i < to; {
		for k := 0; k < perTick && i < to; k++ {
			select {
			case jobs <- i:
				i++
			case <-ctx.Done():
				break feed
			}
		}
		next = next.Add(tick)
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Retry calls try until it returns nil, at most attempts times (at least once), each
// call with a context that ends with ctx or after timeout; before the nth retry it
// pauses n × 100 ms. It returns nil after a success, ctx's error if ctx ended before a
// call, else try's last error. DialMany's connections (and the bench programs' wss
// ones) are dialed this way.
func Retry(ctx context.Context, attempts int, timeout time.Duration, try func(ctx context.Context) error) error {
	var err error
	for attempt := range max(1, attempts) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		tctx, cancel := context.WithTimeout(ctx, timeout)
		err = try(tctx)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}
