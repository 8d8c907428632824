package live

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// Synthetic sessions (no sockets) measure what routing and keepalive cost per operation
// as the number of sessions grows: each must stay flat from 1k to 100k sessions.

var routingSizes = []int{1_000, 10_000, 100_000}

// syntheticServer holds n open sessions with no descriptor (fdOpen false: a delivery stops
// at the session's write lock, so Publish measures routing, not the kernel). Session i is
// subscribed to its own topic "user:i" and to "room:<i%1000>", so a room has n/1000
// members whatever n is.
func syntheticServer(n int) (*Server, []*Session) {
	srv := New(Options{})
	sessions := make([]*Session, n)
	for i := range sessions {
		s := &Session{id: strconv.Itoa(i), srv: srv, fd: -1}
		sessions[i] = s
		srv.Subscribe(s, "user:"+s.id)
		srv.Subscribe(s, "room:"+strconv.Itoa(i%1000))
	}
	return srv, sessions
}

func BenchmarkRouting(b *testing.B) {
	data := []byte(`{"text":"hello"}`)
	for _, n := range routingSizes {
		srv, sessions := syntheticServer(n)
		b.Run(fmt.Sprintf("op=publish-to-one/sessions=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				srv.Publish("user:"+sessions[i%n].id, data)
				i++
			}
		})
		b.Run(fmt.Sprintf("op=publish-to-missing-topic/sessions=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				srv.Publish("nobody", data)
			}
		})
		b.Run(fmt.Sprintf("op=subscribe+unsubscribe/sessions=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s := sessions[i%n]
				srv.Subscribe(s, "extra")
				srv.Unsubscribe(s, "extra")
				i++
			}
		})
		b.Run(fmt.Sprintf("op=join-crowded-room/sessions=%d", n), func(b *testing.B) {
			// Joining and leaving a room that holds every session.
			for _, s := range sessions {
				srv.Subscribe(s, "all")
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				s := sessions[i%n]
				srv.Unsubscribe(s, "all")
				srv.Subscribe(s, "all")
				i++
			}
		})
	}
}

// BenchmarkKeepaliveSweep reports the sweeper's cost per session looked at: each due
// session is checked once and put back in the wheel.
func BenchmarkKeepaliveSweep(b *testing.B) {
	for _, n := range routingSizes {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			srv, sessions := syntheticServer(n)
			now := time.Now()
			for _, s := range sessions {
				s.lastRead.Store(now.UnixNano())
			}
			var due []*Session
			b.ReportAllocs()
			b.ResetTimer()
			checked := 0
			for b.Loop() {
				// Every session comes due once per round, as it would once per PingInterval.
				for _, s := range sessions {
					srv.checkAlive(s, now)
				}
				due = srv.keep.due(now.Unix()+wheelSlots, due[:0])
				checked += n
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(checked), "ns/session")
		})
	}
}
