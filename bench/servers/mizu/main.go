// Command mizu is the benchmark pub/sub app on github.com/go-mizu/mizu/live.
// It is servers/livepoll/main.go with a different import line; keep the two
// files identical otherwise (diff them).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-mizu/mizu/live"

	"github.com/livepoll/livepoll/internal/proc"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: never); a safety net for benchmark runs")
	flag.Parse()
	if _, err := proc.RaiseNOFILE(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() {
			log.Printf("exit-after %v reached", *exitAfter)
			os.Exit(3)
		})
	}

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

	mux := http.NewServeMux()
	mux.Handle("/ws", server.Handler())
	mux.Handle("GET /stats", stats.Handler(&counters))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // goroutine dumps when a run goes wrong
	log.Fatal(http.ListenAndServe(*addr, mux))
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
