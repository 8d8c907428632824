//go:build unix

package redisbroker

import (
	"context"
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
