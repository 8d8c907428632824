package prometheus_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/livepoll/livepoll/live"
	livepollprom "github.com/livepoll/livepoll/metrics/prometheus"
)

// Mount /metrics next to the WebSocket handler; Prometheus then reads the server's Stats at
// every scrape.
func Example() {
	server := live.New(live.Options{
		OnMessage: func(ctx context.Context, s *live.Session, topic string, data []byte) {
			s.Send(live.Message{Topic: topic, Data: data}) // echo
		},
	})
	defer server.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(livepollprom.New(server, livepollprom.Options{
		ConstLabels: prometheus.Labels{"server": "chat"},
	}))
	mux := http.NewServeMux()
	mux.Handle("/ws", server.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	// One echo, so that the session is surely registered and its message counted.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.WriteMessage(websocket.TextMessage, []byte(`{"topic":"hi","data":1}`))
	if _, _, err := c.ReadMessage(); err != nil {
		fmt.Println(err)
		return
	}

	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "livepoll_sessions{") || strings.HasPrefix(sc.Text(), "livepoll_messages_") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// livepoll_messages_received_total{server="chat"} 1
	// livepoll_messages_sent_total{server="chat"} 1
	// livepoll_messages_skipped_total{server="chat"} 0
	// livepoll_sessions{server="chat"} 1
}
