package live

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Regression: Publish holds a topic's read lock while it delivers, and a delivery that
// overflows a session's queue (or fails to write) closes that session. closeWith used to
// take the session's smu (to cancel its context) while Subscribe/Unsubscribe hold smu and
// wait for the topic's write lock: Publish(room) -> deliver(A) -> closeWith -> A.smu, held
// by Unsubscribe(A, room), which waits for room's lock held by Publish. A deadlock of the
// topic, of A's worker and of every later Publish to room; it hit on the first attempt.
func TestPublishOverflowWhileSessionChangesSubscriptionsDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	for attempt := range 5 {
		if deadlocked := lockOrderAttempt(t); deadlocked {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			var keep []string
			for _, g := range strings.Split(string(buf), "\n\n") {
				if strings.Contains(g, "livepoll/live.") {
					keep = append(keep, g)
				}
			}
			os.WriteFile("/tmp/livepoll-lockorder-stacks.txt", buf, 0o644)
			t.Fatalf("attempt %d: Publish deadlocked (full stacks in /tmp/livepoll-lockorder-stacks.txt):\n%s", attempt, strings.Join(keep, "\n\n"))
		}
	}
}

// lockOrderAttempt reports whether Publish got stuck.
func lockOrderAttempt(t *testing.T) bool {
	joined := make(chan struct{}, 1)
	var srv *Server
	srv = New(Options{
		QueueSize: 2,
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			srv.Subscribe(s, "room")
			joined <- struct{}{}
			deadline := time.Now().Add(5 * time.Second)
			for !s.IsClosed() && time.Now().Before(deadline) {
				srv.Unsubscribe(s, "room")
				srv.Subscribe(s, "room")
			}
		},
	})
	hs := httptest.NewServer(srv.Handler())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	rc, err := dialIdle(url, 4096) // never reads
	if err != nil {
		t.Fatal(err)
	}
	rc.write(t, clientFrame(opText, []byte(`{"topic":"churn"}`)))
	recv(t, joined, "join")

	data := []byte(fmt.Sprintf(`"%s"`, strings.Repeat("x", 8<<10)))
	stuck := false
	for i := 0; i < 2000 && !stuck; i++ {
		done := make(chan struct{})
		go func() { srv.Publish("room", data); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			stuck = true
		}
	}
	if stuck {
		return true // leave the server: closing it would wait forever
	}
	rc.Close()
	hs.Close()
	srv.Close()
	return false
}
