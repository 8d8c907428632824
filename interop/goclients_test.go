package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
)

// goConn is one connection of a Go client library. A reader goroutine feeds msgs with
// every message and, last, how the connection ended; then it closes msgs.
type goConn struct {
	msgs chan msg
	// write sends p in a text or binary frame.
	write func(binary bool, p []byte) error
	// ping sends a ping and waits for its pong (the reader goroutine must be reading).
	ping func(ctx context.Context) error
	// closeClient starts the client's closing handshake with 1000 "bye" and returns how
	// it ended, or nil when the reader goroutine reports it.
	closeClient func() *closeInfo
	// kill closes the underlying connection.
	kill func()
}

func (c *goConn) next(what string) msg {
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return msg{Error: "connection already gone, waiting for " + what}
		}
		return m
	case <-timer.C:
		return msg{Error: "timed out waiting for " + what}
	}
}

// waitClosed reads until the reader goroutine reports the end of the connection.
func (c *goConn) waitClosed(what string) closeInfo {
	for {
		m := c.next(what)
		switch {
		case m.Error != "":
			return closeInfo{Error: m.Error}
		case m.Closed != nil:
			return *m.Closed
		}
	}
}

func (c *goConn) sendJSON(v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.write(false, p)
}

// runGoChecks is checks.mjs for a Go client: the same sequence, the same report.
func runGoChecks(t *testing.T, name string, dial func(url string) (*goConn, error), url string) (r report) {
	r.Client = name
	var conns []*goConn
	defer func() {
		for _, c := range conns {
			c.kill()
			for range c.msgs { // the reader goroutine ends
			}
		}
	}()
	open := func(suffix string) *goConn {
		c, err := dial(url + "?name=" + name + "-" + suffix)
		if err != nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		conns = append(conns, c)
		return c
	}
	must := func(err error) {
		if err != nil {
			t.Fatalf("%s: write: %v", name, err)
		}
	}
	subscribe := map[string]any{"topic": "subscribe", "data": map[string]string{"topic": "room"}}

	b := open("b")
	must(b.sendJSON(subscribe))
	r.BSubscribed = b.next("b subscribed")

	a := open("a")
	must(a.sendJSON(subscribe))
	r.Subscribed = a.next("subscribed")

	must(a.write(false, []byte(`{"topic":"publish","data":{"topic":"room","data":{"text":"<hi> é ☃"}}}`)))
	r.Published = a.next("published")
	r.BPublished = b.next("b published")

	must(a.write(false, []byte(`{"topic":"echo","data":[1, 2,  3]}`)))
	r.Echo = a.next("echo")

	must(a.write(true, []byte(`{"topic":"echo","data":{"binary":true}}`)))
	r.BinaryEcho = a.next("binary echo")

	big := pattern(bigSize)
	must(a.write(false, []byte(`{"topic":"echo","data":"`+big+`"}`)))
	if m := a.next("1 MiB echo"); m.Error != "" || m.Closed != nil {
		r.Big.Error = fmt.Sprintf("%+v", m)
	} else {
		r.Big.Len, r.Big.Binary = len(m.Text), m.Binary
		r.Big.Equal = m.Text == `{"topic":"echo","data":"`+big+`"}`
	}

	r.Ping = &struct {
		OK      bool   `json:"ok"`
		Payload string `json:"payload"`
		Error   string `json:"error"`
	}{}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	if err := a.ping(ctx); err != nil {
		r.Ping.Error = err.Error()
	} else {
		r.Ping.OK = true
	}
	cancel()

	time.Sleep(idle) // silent past IdleTimeout: only answering the server's pings keeps it open
	if err := a.write(false, []byte(`{"topic":"echo","data":"after idle"}`)); err != nil {
		r.AfterIdle = msg{Error: "write after idling (did the server close the connection?): " + err.Error()}
	} else {
		r.AfterIdle = a.next("echo after idle")
	}

	if err := b.sendJSON(map[string]string{"topic": "close"}); err != nil {
		r.BClose = closeInfo{Error: "write after idling (did the server close the connection?): " + err.Error()}
	} else {
		r.BClose = b.waitClosed("server close")
	}

	if c := a.closeClient(); c != nil {
		r.Close = *c
	} else {
		r.Close = a.waitClosed("client close")
	}
	return r
}

// pattern is checks.mjs's pattern.
func pattern(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	var sb strings.Builder
	sb.Grow(n)
	for j := range n {
		sb.WriteByte(alphabet[(j*7+(j>>12))%len(alphabet)])
	}
	return sb.String()
}

func dialGorilla(url string) (*goConn, error) {
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	pongs := make(chan string, 1)
	ws.SetPongHandler(func(p string) error {
		select {
		case pongs <- p:
		default:
		}
		return nil
	})
	c := &goConn{msgs: make(chan msg, 16)}
	go func() {
		defer close(c.msgs)
		for {
			typ, p, err := ws.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					c.msgs <- msg{Closed: &closeInfo{Code: ce.Code, Reason: ce.Text, WasClean: true}}
				} else {
					c.msgs <- msg{Error: err.Error()}
				}
				return
			}
			c.msgs <- msg{Text: string(p), Binary: typ == websocket.BinaryMessage}
		}
	}()
	c.write = func(binary bool, p []byte) error {
		typ := websocket.TextMessage
		if binary {
			typ = websocket.BinaryMessage
		}
		ws.SetWriteDeadline(time.Now().Add(waitTimeout))
		return ws.WriteMessage(typ, p)
	}
	c.ping = func(ctx context.Context) error {
		deadline, _ := ctx.Deadline()
		if err := ws.WriteControl(websocket.PingMessage, []byte(pingPayload), deadline); err != nil {
			return err
		}
		select {
		case p := <-pongs:
			if p != pingPayload {
				return fmt.Errorf("pong payload %q, want %q", p, pingPayload)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.closeClient = func() *closeInfo {
		// gorilla's ReadMessage reports the server's answering close frame as a CloseError.
		err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(waitTimeout))
		if err != nil {
			return &closeInfo{Error: err.Error()}
		}
		return nil
	}
	c.kill = func() { ws.Close() }
	return c, nil
}

func dialCoder(url string) (*goConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, resp, err := coder.Dial(ctx, url, &coder.DialOptions{HTTPClient: &http.Client{Timeout: waitTimeout}})
	if err != nil {
		return nil, err
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	ws.SetReadLimit(2 << 20) // default 32 KiB
	c := &goConn{msgs: make(chan msg, 16)}
	go func() {
		defer close(c.msgs)
		for {
			typ, p, err := ws.Read(context.Background())
			if err != nil {
				if code := coder.CloseStatus(err); code != -1 {
					var ce coder.CloseError
					errors.As(err, &ce)
					c.msgs <- msg{Closed: &closeInfo{Code: int(code), Reason: ce.Reason, WasClean: true}}
				} else {
					c.msgs <- msg{Error: err.Error()}
				}
				return
			}
			c.msgs <- msg{Text: string(p), Binary: typ == coder.MessageBinary}
		}
	}()
	c.write = func(binary bool, p []byte) error {
		typ := coder.MessageText
		if binary {
			typ = coder.MessageBinary
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		return ws.Write(ctx, typ, p)
	}
	c.ping = ws.Ping // coder picks the payload and matches the pong itself
	c.closeClient = func() *closeInfo {
		// Close writes 1000 "bye" and returns nil once the server's close frame carries
		// the same code (its reader sees it and answers; our Read then ends).
		if err := ws.Close(coder.StatusNormalClosure, "bye"); err != nil {
			return &closeInfo{Error: err.Error()}
		}
		return &closeInfo{Code: 1000, WasClean: true}
	}
	c.kill = func() { ws.CloseNow() }
	return c, nil
}

func TestGorilla(t *testing.T) {
	t.Parallel()
	a := runServer(t)
	r := runGoChecks(t, "gorilla", dialGorilla, a.wsURL)
	checkReport(t, a, "gorilla", r, true)
}

func TestCoder(t *testing.T) {
	t.Parallel()
	a := runServer(t)
	r := runGoChecks(t, "coder", dialCoder, a.wsURL)
	checkReport(t, a, "coder", r, true)
}
