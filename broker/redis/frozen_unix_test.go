//go:build unix

package redisbroker

import (
	"context"
	"errors"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/brokertest"
)

// A connection that stops answering (the server frozen, not closed) is detected by the
// health check and dropped; the broker reconnects once the server answers again.
func TestFrozenServerDetected(t *testing.T) {
	rs := startRedis(t)
	br := New(rs.client(t), Options{HealthCheck: 200 * time.Millisecond, Logger: quiet()})
	n := brokertest.NewNode(t, "A", br)
	c := n.Client(t, "c", "t")
	brokertest.Eventually(t, "interest", func() bool { return rs.subscribers(t, "livepoll:t") == 1 })
	rs.mu.Lock()
	proc := rs.cmd.Process
	rs.mu.Unlock()
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Skipf("cannot freeze redis-server: %v", err)
	}
	frozen := time.Now()
	brokertest.Eventually(t, "silence detected", func() bool { return !n.Srv.Stats().Broker.Connected })
	t.Logf("frozen server detected after %v", time.Since(frozen).Round(time.Millisecond))
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, "reconnected", func() bool { return n.Srv.Stats().Broker.Connected })
	other := rs.client(t)
	other.Publish(context.Background(), "livepoll:t", `"back"`)
	c.Expect(t, "t", `"back"`)
}

// While Redis hangs (frozen, the connection still open) the publishing goroutine waits in
// its pipeline; the queue fills and Publish fails at once with ErrQueueFull. When Redis
// runs again what was queued is sent.
func TestQueueFullWhileRedisHangs(t *testing.T) {
	rs := startRedis(t)
	br := New(rs.client(t), Options{QueueSize: 4, HealthCheck: 10 * time.Second, Logger: quiet()})
	brokertest.NewNode(t, "A", br)
	rs.mu.Lock()
	proc := rs.cmd.Process
	rs.mu.Unlock()
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Skipf("cannot freeze redis-server: %v", err)
	}
	const n = 100
	full := 0
	began := time.Now()
	for i := range n {
		err := br.Publish("t", []byte(strconv.Itoa(i)))
		switch {
		case errors.Is(err, ErrQueueFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
	}
	took := time.Since(began)
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if took > time.Second {
		t.Errorf("%d publishes took %v while Redis hung", n, took)
	}
	// The goroutine holds one batch (what was queued when it started it), the queue 4 more.
	if full == 0 || n-full > maxBatch+4 {
		t.Fatalf("%d of %d publishes refused", full, n)
	}
	brokertest.Eventually(t, "queue sent", func() bool {
		st := br.Stats()
		return st.Queued == 0 && st.Sent+st.Lost == uint64(n-full)
	})
	if st := br.Stats(); st.Lost != 0 {
		t.Errorf("%d messages lost; Redis was only paused", st.Lost)
	}
}
