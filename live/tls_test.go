package live

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Handler mounted on an https server works end to end: a *tls.Conn has no pollable
// descriptor, so these sessions take the portable path (a reader and a writer goroutine)
// and must behave exactly like polled ones.
func TestTLSEndToEnd(t *testing.T) {
	closes := newCloseLog(t)
	var srv *Server
	srv = New(Options{
		OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
			switch topic {
			case "subscribe":
				srv.Subscribe(s, "room")
				s.Send(Message{Topic: "ok"})
			case "publish":
				srv.Publish("room", data)
			case "close":
				s.Close()
			}
		},
		OnClose: closes.OnClose,
	})
	hs := httptest.NewTLSServer(srv.Handler())
	defer func() {
		hs.Close()
		srv.Close()
	}()
	url := "wss" + strings.TrimPrefix(hs.URL, "https")
	d := websocket.Dialer{
		TLSClientConfig:  hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone(),
		HandshakeTimeout: 5 * time.Second,
	}
	dialTLS := func() *websocket.Conn {
		c, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dialTLS(), dialTLS()
	for _, c := range []*websocket.Conn{a, b} {
		send(t, c, `{"topic":"subscribe"}`)
		if _, m := readMsg(t, c); m != `{"topic":"ok"}` {
			t.Fatalf("got %s", m)
		}
	}
	big := strings.Repeat("x", 1<<20)
	send(t, a, `{"topic":"publish","data":"`+big+`"}`)
	for _, c := range []*websocket.Conn{a, b} {
		if _, m := readMsg(t, c); m != `{"topic":"room","data":"`+big+`"}` {
			t.Fatalf("1 MiB publish over TLS came back as %d bytes", len(m))
		}
	}
	// A ping is answered.
	pong := make(chan string, 1)
	a.SetPongHandler(func(p string) error { pong <- p; return nil })
	a.WriteControl(websocket.PingMessage, []byte("tls?"), time.Now().Add(time.Second))
	go a.ReadMessage()
	if p := recv(t, pong, "pong over TLS"); p != "tls?" {
		t.Fatalf("pong %q", p)
	}
	// Session.Close: the client gets 1000, OnClose gets nil.
	send(t, b, `{"topic":"close"}`)
	if code := closeCode(t, b); code != 1000 {
		t.Fatalf("close code %d, want 1000", code)
	}
	if ev := closes.next(t); ev.err != nil {
		t.Fatalf("OnClose err %v, want nil", ev.err)
	}
	// The other session ends with the server.
	srv.Close()
	if ev := closes.next(t); !errors.Is(ev.err, ErrServerClosed) {
		t.Fatalf("OnClose err %v, want ErrServerClosed", ev.err)
	}
}
