// Command mizu is the benchmark pub/sub app on github.com/go-mizu/mizu/live.
// It is servers/livepoll/main.go with a different import line, without its
// -compress flag (mizu's live does not compress) and without its serve: with -cert
// and -key this app serves wss:// with net/http's TLS (pubsub.Listen.ListenAndServe),
// which is how mizu's live, a net/http Handler, is served over TLS; keep the two files
// identical otherwise (diff them).
package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"sync/atomic"

	"github.com/go-mizu/mizu/live"

	"github.com/livepoll/livepoll/bench/internal/pubsub"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

func main() {
	listen := pubsub.Startup()

	var counters stats.Counters
	var server *live.Server
	server = live.New(live.Options{
		OnAuth: func(ctx context.Context, r *http.Request) (any, error) {
			counters.Auths.Add(1)
			return new(atomic.Bool), nil // set once the session is counted
		},
		OnMessage: func(ctx context.Context, s *live.Session, topic string, data []byte) {
			handle(server, s, topic, data)
			if counted, _ := s.Value().(*atomic.Bool); counted != nil && counted.CompareAndSwap(false, true) {
				counters.Sessions.Add(1)
			}
		},
		OnClose: func(s *live.Session, err error) {
			counters.Closes.Add(1)
			if counted, _ := s.Value().(*atomic.Bool); counted != nil && counted.Load() {
				counters.Sessions.Add(-1)
			}
		},
	})

	log.Fatal(listen.ListenAndServe(pubsub.Mux(server.Handler(), &counters)))
}

type topicData struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

func handle(server *live.Server, s *live.Session, topic string, data []byte) {
	switch topic {
	case "subscribe", "unsubscribe", "publish":
		var td topicData
		if err := json.Unmarshal(data, &td); err != nil {
			return
		}
		switch topic {
		case "subscribe":
			server.Subscribe(s, td.Topic)
		case "unsubscribe":
			server.Unsubscribe(s, td.Topic)
		default:
			server.Publish(td.Topic, td.Data)
		}
	case "echo":
		_ = s.Send(live.Message{Topic: "echo", Data: data})
	}
}
