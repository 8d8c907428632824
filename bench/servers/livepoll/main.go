// Command livepoll is the benchmark pub/sub app on github.com/livepoll/livepoll/live.
// It is servers/mizu/main.go with a different import line, a -compress flag
// (Options.Compression: permessage-deflate with clients that offer it; mizu's live
// does not compress) and its own way of serving wss:// (serve: Server.ServeTLS on the
// listener, so wss sessions are served from the event loop, as docs/tls.md says to;
// mizu's app serves wss with net/http's TLS, as mizu's live does) and -serve (Server.Serve
// accepting on the event loop instead of Handler under net/http: compare's connect part
// measures livepoll both ways, as livepoll-serve); keep the two files identical otherwise
// (diff them).
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/livepoll/livepoll/live"

	"github.com/livepoll/livepoll/bench/internal/pubsub"
	stats "github.com/livepoll/livepoll/internal/srvstats"
)

func main() {
	compress := flag.Bool("compress", false, "negotiate permessage-deflate with clients that offer it")
	serveOwn := flag.Bool("serve", false, "serve ws:// with Server.Serve on -addr (accepting on the event loop, as docs/tuning.md recommends) instead of Handler under net/http; /stats is on -stats-addr")
	listen := pubsub.Startup()

	var counters stats.Counters
	var server *live.Server
	server = live.New(live.Options{
		Compression: *compress,
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

	log.Fatal(serve(listen, server, pubsub.Mux(server.Handler(), &counters), *serveOwn))
}

// serve serves ws:// as mizu's app does (Handler under net/http), or with -serve through
// Server.Serve on -addr; with -cert and -key, wss:// with Server.ServeTLS on a listener of
// -addr (crypto/tls's handshake, then livepoll's record layer on the event loop; ALPN
// http/1.1). Serve and ServeTLS serve WebSocket upgrades only, so mux is served as plain
// HTTP on -stats-addr then.
func serve(listen pubsub.Listen, server *live.Server, mux *http.ServeMux, serveOwn bool) error {
	if !listen.TLS() && !serveOwn {
		return listen.ListenAndServe(mux)
	}
	if listen.StatsAddr == "" {
		return errors.New("-serve and -cert need -stats-addr")
	}
	if !listen.TLS() {
		ln, err := net.Listen("tcp", listen.Addr)
		if err != nil {
			return err
		}
		listen.ServeStats(mux)
		return server.Serve(ln)
	}
	cert, err := tls.LoadX509KeyPair(listen.CertFile, listen.KeyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen.Addr)
	if err != nil {
		return err
	}
	listen.ServeStats(mux)
	return server.ServeTLS(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
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
