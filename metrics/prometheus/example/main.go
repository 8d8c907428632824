// Command example serves a livepoll pub/sub server on /ws and its Prometheus metrics on
// /metrics, on one address:
//
//	go run ./example -addr 127.0.0.1:8080
//	curl -s 127.0.0.1:8080/metrics | grep ^livepoll_
//
// A client that sends {"topic":"join","data":"room"} is subscribed to "room"; anything it
// sends with another topic is published to that topic.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/livepoll/livepoll/live"
	livepollprom "github.com/livepoll/livepoll/metrics/prometheus"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	name := flag.String("name", "example", `value of the "server" label on every livepoll metric`)
	flag.Parse()

	var server *live.Server
	server = live.New(live.Options{
		OnMessage: func(ctx context.Context, s *live.Session, topic string, data []byte) {
			if topic == "join" {
				var room string
				if json.Unmarshal(data, &room) == nil && room != "" {
					server.Subscribe(s, room)
				}
				return
			}
			server.Publish(topic, data)
		},
	})

	// A registry of our own rather than the default one, so the page holds exactly what is
	// registered here: livepoll's metrics and the usual Go and process ones.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		livepollprom.New(server, livepollprom.Options{ConstLabels: prometheus.Labels{"server": *name}}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	mux := http.NewServeMux()
	mux.Handle("/ws", server.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	hs := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		server.Shutdown(shutdown) // closes every session with 1001 first
		hs.Shutdown(shutdown)
	}()
	slog.Info("serving", "ws", "ws://"+*addr+"/ws", "metrics", "http://"+*addr+"/metrics")
	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		slog.Error("serve", "err", err)
		os.Exit(1)
	}
	<-done // ListenAndServe returns as soon as Shutdown starts; wait for it to finish
}
