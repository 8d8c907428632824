//go:build linux

package live

import (
	"fmt"
	"testing"
)

// BenchmarkPublishCompressed is BenchmarkPublish with a 2 KiB JSON message, to subscribers
// that negotiated compression and to subscribers that did not: one compression per
// Publish whatever the number of subscribers, so the time per delivery approaches the
// plain one as the topic grows. B/delivery is what was written per delivery (frames the
// socket did not take stay queued: the sessions have no poller to flush them). The
// queue bounds are lifted so that no session is closed for a full queue.
//
//	go test -run '^$' -bench PublishCompressed ./live
func BenchmarkPublishCompressed(b *testing.B) {
	data := jsonList(2048)
	for _, compressed := range []bool{false, true} {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("compressed=%v/subscribers=%d", compressed, n), func(b *testing.B) {
				srv := New(Options{QueueSize: 1 << 20, QueueBytes: 1 << 30, Compression: true})
				sessions, stop := socketSessions(b, srv, n)
				defer stop()
				for _, s := range sessions {
					if compressed {
						s.zbits = maxWindowBits
					}
					srv.Subscribe(s, "fan")
				}
				before := srv.Stats().BytesOut
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					srv.Publish("fan", data)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
				b.ReportMetric(float64(srv.Stats().BytesOut-before)/float64(b.N*n), "B/delivery")
			})
		}
	}
}

// TestPublishCompressedAllocsIndependentOfSubscribers: a Publish to subscribers that
// negotiated compression allocates as much for 500 of them as for one (one compression,
// one shared frame).
func TestPublishCompressedAllocsIndependentOfSubscribers(t *testing.T) {
	data := jsonList(2048)
	allocs := func(n int) float64 {
		srv := New(Options{QueueSize: 1 << 20, QueueBytes: 1 << 30, Compression: true})
		sessions, stop := socketSessions(t, srv, n)
		defer stop()
		for _, s := range sessions {
			s.zbits = maxWindowBits
			srv.Subscribe(s, "fan")
		}
		srv.Publish("fan", data) // warm the pools
		return testing.AllocsPerRun(500, func() { srv.Publish("fan", data) })
	}
	one, many := allocs(1), allocs(500)
	// A compressor is several objects; under -race sync.Pool drops a quarter of what is
	// put back, so the two counts differ by an allocation or two either way. An allocation
	// per subscriber would add 500.
	if many > one+5 {
		t.Fatalf("a compressed Publish allocates %.1f times for 500 subscribers, %.1f for 1", many, one)
	}
	t.Logf("allocations per compressed Publish: %.1f (1 subscriber), %.1f (500 subscribers)", one, many)
}
