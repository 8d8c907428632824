//go:build linux

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/livepoll/livepoll/internal/srvstats"
	"github.com/livepoll/livepoll/live"
)

// newApp is the pub/sub app loadgen's own server runs: the protocol of
// bench/servers/livepoll (subscribe, unsubscribe, publish, echo) on a live.Server, with
// the session count /stats reports. The returned handler serves /ws and GET /stats.
func newApp(opts live.Options) (http.Handler, *live.Server) {
	var counters srvstats.Counters
	var server *live.Server
	opts.OnAuth = func(ctx context.Context, r *http.Request) (any, error) {
		counters.Auths.Add(1)
		return new(atomic.Bool), nil // set once the session is counted
	}
	opts.OnMessage = func(ctx context.Context, s *live.Session, topic string, data []byte) {
		handle(server, s, topic, data)
		if counted, _ := s.Value().(*atomic.Bool); counted != nil && counted.CompareAndSwap(false, true) {
			counters.Sessions.Add(1)
		}
	}
	opts.OnClose = func(s *live.Session, err error) {
		counters.Closes.Add(1)
		if counted, _ := s.Value().(*atomic.Bool); counted != nil && counted.Load() {
			counters.Sessions.Add(-1)
		}
	}
	server = live.New(opts)
	mux := http.NewServeMux()
	mux.Handle("/ws", server.Handler())
	mux.Handle("GET /stats", srvstats.Handler(&counters))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // the heap profile for -heap-profile
	return mux, server
}

// newHTTPServer serves h with a bound on unfinished request heads (net/http waits
// forever by default).
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
