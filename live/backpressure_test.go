package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A client that never reads is closed with ErrQueueFull once QueueSize messages wait for
// it; Publish never blocks on it; a healthy subscriber of the same topic misses nothing.
func TestSlowSubscriberIsClosedWithErrQueueFull(t *testing.T) {
	t.Parallel()
	closes := newCloseLog(t)
	joined := make(chan string, 2)
	var srv *Server
	srv, url := testServer(t, Options{
		QueueSize: 16,
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			srv.Subscribe(s, "feed")
			joined <- topic
		},
		OnClose: closes.OnClose,
	})

	slow, err := dialIdle(url, 4096) // small receive buffer, and it never reads
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	slow.write(t, clientFrame(opText, []byte(`{"topic":"slow"}`)))
	recv(t, joined, "slow joins")

	healthy := dialCoder(t, url)
	writeCoder(t, healthy, `{"topic":"healthy"}`)
	recv(t, joined, "healthy joins")

	var got atomic.Int64
	readDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := 0; ; i++ {
			_, p, err := healthy.Read(ctx)
			if err != nil {
				readDone <- fmt.Errorf("after %d messages: %w", i, err)
				return
			}
			var m struct {
				Data struct{ Seq int }
			}
			if err := json.Unmarshal(p, &m); err != nil || m.Data.Seq != i {
				readDone <- fmt.Errorf("message %d has seq %d (%v)", i, m.Data.Seq, err)
				return
			}
			got.Add(1)
		}
	}()

	pad := strings.Repeat("x", 64<<10)
	var durations []time.Duration
	publish := func(seq int) {
		// Keep the healthy reader within a few messages so its own queue never fills.
		waitUntil(t, 10*time.Second, "healthy reader to keep up", func() bool { return got.Load() >= int64(seq)-8 })
		data := []byte(fmt.Sprintf(`{"seq":%d,"pad":"%s"}`, seq, pad))
		start := time.Now()
		srv.Publish("feed", data)
		durations = append(durations, time.Since(start))
	}
	seq := 0
	var slowErr error
	for ; slowErr == nil; seq++ {
		if seq > 5000 {
			t.Fatal("5000 messages of 64 KiB published and the silent client was never closed")
		}
		publish(seq)
		select {
		case ev := <-closes.events:
			slowErr = ev.err
		default:
		}
	}
	t.Logf("silent client closed after %d messages: %v", seq, slowErr)
	if !errors.Is(slowErr, ErrQueueFull) {
		t.Fatalf("OnClose err = %v, want ErrQueueFull", slowErr)
	}
	for range 20 {
		publish(seq)
		seq++
	}
	waitUntil(t, 10*time.Second, "healthy reader to get every message", func() bool { return got.Load() == int64(seq) })
	select {
	case err := <-readDone:
		t.Fatalf("healthy reader: %v", err)
	default:
	}
	// Blocking on the silent client would last until it reads (never) or at least until
	// the closing handshake times out (2 s). What remains is CPU: compacting 64 KiB of JSON
	// under -race on a shared machine takes tens of milliseconds, hence the loose bound.
	slices.Sort(durations)
	median, slowest := durations[len(durations)/2], durations[len(durations)-1]
	t.Logf("Publish of 64 KiB to 2 subscribers: median %v, slowest %v", median, slowest)
	if slowest > time.Second {
		t.Fatalf("slowest Publish took %v; it must not block on a slow subscriber", slowest)
	}
	// The server lets go of the silent client's socket after the closing handshake times out.
	waitUntil(t, closeTimeout+3*time.Second, "the silent session to be finished", func() bool { return openSessions(srv) == 1 })
}
