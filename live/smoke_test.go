package live

import (
	"context"
	"encoding/json"
	"testing"
)

func TestSmokeSubscribePublishEcho(t *testing.T) {
	var srv *Server
	closed := make(chan error, 1)
	srv, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			switch topic {
			case "subscribe":
				var req struct{ Topic string }
				json.Unmarshal(data, &req)
				srv.Subscribe(s, req.Topic)
				s.Send(Message{Topic: "subscribed", Data: data})
			case "publish":
				srv.Publish("room", data)
			case "echo":
				s.Send(Message{Topic: "echo", Data: data})
			}
		},
		OnClose: func(s *Session, err error) { closed <- err },
	})
	c := dial(t, url)
	send(t, c, `{"topic":"subscribe","data":{"topic":"room"}}`)
	if _, m := readMsg(t, c); m != `{"topic":"subscribed","data":{"topic":"room"}}` {
		t.Fatalf("got %s", m)
	}
	send(t, c, `{"topic":"publish","data":{"text":"<hi>"}}`)
	if _, m := readMsg(t, c); m != `{"topic":"room","data":{"text":"\u003chi\u003e"}}` {
		t.Fatalf("got %s", m)
	}
	send(t, c, `{"topic":"echo","data":[1, 2,  3]}`)
	if _, m := readMsg(t, c); m != `{"topic":"echo","data":[1,2,3]}` {
		t.Fatalf("got %s", m)
	}
	c.WriteMessage(8, []byte{3, 232})
	if err := <-closed; err != nil {
		t.Fatalf("OnClose err = %v, want nil", err)
	}
}
