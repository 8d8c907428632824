package live_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/live"
)

// A chat room: clients subscribe with {"topic":"join","data":{"room":...}} and talk with
// {"topic":"say","data":{"room":...,"text":...}}; everyone in the room hears it.
func Example() {
	var server *live.Server
	server = live.New(live.Options{
		OnMessage: func(ctx context.Context, s *live.Session, topic string, data []byte) {
			var req struct{ Room, Text string }
			if json.Unmarshal(data, &req) != nil {
				return
			}
			switch topic {
			case "join":
				server.Subscribe(s, "room:"+req.Room)
				s.Send(live.Message{Topic: "joined", Data: data})
			case "say":
				msg, _ := json.Marshal(map[string]string{"text": req.Text})
				server.Publish("room:"+req.Room, msg)
			}
		},
	})
	defer server.Close()
	hs := httptest.NewServer(server.Handler())
	defer hs.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.WriteMessage(websocket.TextMessage, []byte(`{"topic":"join","data":{"room":"go"}}`))
	_, joined, _ := c.ReadMessage()
	c.WriteMessage(websocket.TextMessage, []byte(`{"topic":"say","data":{"room":"go","text":"hi"}}`))
	_, heard, _ := c.ReadMessage()
	fmt.Println(string(joined))
	fmt.Println(string(heard))
	// Output:
	// {"topic":"joined","data":{"room":"go"}}
	// {"topic":"room:go","data":{"text":"hi"}}
}
