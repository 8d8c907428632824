//go:build linux

package live

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// socketSessions makes n sessions whose sockets are one end of a socketpair (no poller,
// no HTTP); a goroutine drains the other ends so writes keep succeeding. stop closes it all.
func socketSessions(tb testing.TB, srv *Server, n int) (sessions []*Session, stop func()) {
	tb.Helper()
	peers := make([]int, n)
	for i := range n {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			tb.Fatalf("socketpair: %v (is ulimit -n large enough for %d sessions?)", err, n)
		}
		unix.SetNonblock(fds[0], true)
		unix.SetNonblock(fds[1], true)
		unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
		sessions = append(sessions, &Session{id: fmt.Sprint(i), srv: srv, fd: int32(fds[0]), fdOpen: true})
		peers[i] = fds[1]
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, fd := range peers {
				for {
					if n, _ := unix.Read(fd, buf); n <= 0 {
						break
					}
				}
			}
		}
	}()
	return sessions, func() {
		close(done)
		wg.Wait()
		for i, s := range sessions {
			unix.Close(int(s.fd))
			unix.Close(peers[i])
		}
	}
}

// BenchmarkPublish shows that a Publish costs the same allocations whatever the number of
// subscribers (the frame is encoded once and shared), and its time per delivery.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			srv := New(Options{QueueSize: 1 << 20})
			sessions, stop := socketSessions(b, srv, n)
			defer stop()
			for _, s := range sessions {
				srv.Subscribe(s, "fan")
			}
			data := []byte(`{"seq":12345,"text":"a message of about a hundred bytes on the wire, padded"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				srv.Publish("fan", data)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// BenchmarkPublishRing compares the publisher's own writes to a topic below fanoutLarge
// with and without io_uring (a started engine, so the ring path is open to it).
func BenchmarkPublishRing(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, ring := range []bool{false, true} {
			b.Run(fmt.Sprintf("subscribers=%d/ring=%v", n, ring), func(b *testing.B) {
				noRing.Store(!ring)
				defer noRing.Store(false)
				srv := New(Options{QueueSize: 1 << 20})
				if err := srv.start(); err != nil {
					b.Fatal(err)
				}
				defer srv.Close()
				sessions, stop := socketSessions(b, srv, n)
				defer stop()
				for _, s := range sessions {
					srv.Subscribe(s, "fan")
				}
				data := []byte(`{"seq":12345,"text":"a message of about a hundred bytes on the wire, padded"}`)
				b.ResetTimer()
				for b.Loop() {
					srv.Publish("fan", data)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			})
		}
	}
}

// TestPublishAllocsIndependentOfSubscribers is the benchmark's claim as a check: the
// allocations of one Publish to 1 and to 500 subscribers are equal.
func TestPublishAllocsIndependentOfSubscribers(t *testing.T) {
	allocs := func(n int) float64 {
		srv := New(Options{QueueSize: 1 << 20})
		sessions, stop := socketSessions(t, srv, n)
		defer stop()
		for _, s := range sessions {
			srv.Subscribe(s, "fan")
		}
		data := []byte(`{"seq":1}`)
		srv.Publish("fan", data) // warm the pools
		// AllocsPerRun counts the whole process's mallocs; many runs average away what
		// other goroutines (a closing server from an earlier test) allocate meanwhile.
		return testing.AllocsPerRun(5000, func() { srv.Publish("fan", data) })
	}
	one, many := allocs(1), allocs(500)
	if many > one {
		t.Fatalf("Publish allocates %.1f times for 500 subscribers, %.1f for 1", many, one)
	}
	t.Logf("allocations per Publish: %.1f (1 subscriber), %.1f (500 subscribers)", one, many)
}
