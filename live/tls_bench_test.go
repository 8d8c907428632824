package live

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// BenchmarkPublishTLS is BenchmarkPublish for wss subscribers: every delivery seals its
// own copy of the shared frame. The clients drain their TCP sockets without decrypting,
// so the time is the server's (plus the drain's reads); compare with BenchmarkPublish.
func BenchmarkPublishTLS(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			var srv *Server
			srv = New(Options{QueueSize: 1 << 20, OnMessage: func(_ context.Context, s *Session, _ string, _ []byte) {
				srv.Subscribe(s, "fan")
				s.Send(Message{Topic: "ok"})
			}})
			url, client := serveTLS(b, srv)
			var drains sync.WaitGroup
			var raws []*recordingConn
			b.Cleanup(func() { // before the server's cleanup (cleanups run last-registered first)
				for _, raw := range raws {
					raw.Conn.Close()
				}
				drains.Wait()
			})
			for range n {
				var raw *recordingConn
				rc := tlsRawDial(b, url, client, 0, &raw)
				rc.write(b, clientFrame(opText, []byte(`{"topic":"sub"}`)))
				rc.SetReadDeadline(time.Now().Add(waitTimeout))
				rc.mustFrame(b, opText)
				raws = append(raws, raw)
				drains.Add(1)
				go func() { defer drains.Done(); io.Copy(io.Discard, raw.Conn) }()
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
