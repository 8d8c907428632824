package wsfleet

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DialSpec says how DialMany opens connections.
type DialSpec struct {
	URL         string
	From, To    int // connection indexes [From, To)
	Concurrency int // dials in flight at once
	Rate        int // connections per second at most (0: unbounded)
	// First returns the first message of connection i (nil: none).
	First func(i int) []byte
	// Opened receives each new connection; it may be called concurrently.
	Opened func(i, fd int, leftover []byte) error
}

// DialMany opens connections From..To-1, spreading them over SourceIPs
// (connection i uses SourceIPs[i%len]). A connection is tried three times;
// the first one that still fails stops the run and its error is returned.
func DialMany(ctx context.Context, s DialSpec) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(1, s.Concurrency) {
		wg.Go(func() {
			for i := range jobs {
				if err := dialOne(ctx, s, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	// Pace in 10 ms batches rather than one timer per connection.
	const tick = 10 * time.Millisecond
	perTick := s.To - s.From
	if s.Rate > 0 {
		perTick = max(1, s.Rate/int(time.Second/tick))
	}
	next := time.Now()
feed:
	for i := s.From; i < s.To; {
		for k := 0; k < perTick && i < s.To; k++ {
			select {
			case jobs <- i:
				i++
			case <-ctx.Done():
				break feed
			}
		}
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return err
	}
	return nil
}

func dialOne(ctx context.Context, s DialSpec, i int) error {
	var first []byte
	if s.First != nil {
		first = s.First(i)
	}
	var err error
	for attempt := range 3 {
		if ctx.Err() != nil {
			return nil // another dial failed; that error is the one reported
		}
		var fd int
		var leftover []byte
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		fd, leftover, err = Dial(dctx, s.URL, SourceIPs[i%len(SourceIPs)], first)
		cancel()
		if err == nil {
			return s.Opened(i, fd, leftover)
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	return fmt.Errorf("dial %d: %w", i, err)
}
