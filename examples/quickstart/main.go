// Command quickstart is the README example: a chat server on livepoll, written exactly as
// for mizu's live package except for the import path.
//
//	go run ./examples/quickstart -addr 127.0.0.1:8080
//
// Then, from a browser console on http://127.0.0.1:8080/ (same origin):
//
//	ws = new WebSocket('ws://127.0.0.1:8080/ws?user=alice')
//	ws.onmessage = e => console.log(e.data)
//	ws.send(JSON.stringify({topic: 'subscribe', data: {topic: 'chat:general'}}))
//	ws.send(JSON.stringify({topic: 'chat', data: {text: 'Hello!'}}))
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/http"

	"github.com/livepoll/livepoll/live" // was: "github.com/go-mizu/mizu/live"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()

	var server *live.Server
	server = live.New(live.Options{
		OnAuth: func(ctx context.Context, r *http.Request) (any, error) {
			user := r.URL.Query().Get("user")
			if user == "" {
				return nil, errors.New("user required")
			}
			return user, nil
		},
		OnMessage: func(ctx context.Context, s *live.Session, topic string, data []byte) {
			switch topic {
			case "subscribe":
				var req struct {
					Topic string `json:"topic"`
				}
				json.Unmarshal(data, &req)
				server.Subscribe(s, req.Topic)
			case "chat":
				server.Publish("chat:general", data)
			}
		},
		OnClose: func(s *live.Session, err error) {
			log.Printf("session %s (%v) closed: %v", s.ID(), s.Value(), err)
		},
	})

	http.Handle("/ws", server.Handler())
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("livepoll quickstart: connect a WebSocket to /ws?user=NAME\n"))
	})
	log.Printf("listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
