package tlsfleet

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livepoll/livepoll/bench/internal/tlscert"
	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const wait = 5 * time.Second // deadline of every wait below

// server is a wss:// test server (gorilla over net/http's TLS) that echoes each text
// message; "ping" makes it send a ping and wait for the pong, "close" makes it send a
// close frame (1001 "going").
func server(t *testing.T) (*httptest.Server, *tlscert.Cert, *atomic.Int64) {
	t.Helper()
	cert, err := tlscert.New("tlsfleet-test")
	if err != nil {
		t.Fatal(err)
	}
	var pongs atomic.Int64
	var handlers sync.WaitGroup
	up := websocket.Upgrader{}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(string) error { pongs.Add(1); return nil })
		for {
			_ = c.SetReadDeadline(time.Now().Add(wait))
			_, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			switch string(p) {
			case "ping":
				_ = c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(wait))
			case "close":
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1001, "going"), time.Now().Add(wait))
			}
			if err := c.WriteMessage(websocket.TextMessage, p); err != nil {
				return
			}
		}
	}))
	ts.TLS = cert.ServerConfig()
	ts.StartTLS()
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		handlers.Wait()
	})
	return ts, cert, &pongs
}

func wsURL(ts *httptest.Server) string {
	return "wss://" + strings.TrimPrefix(ts.URL, "https://") + "/"
}

func TestFleet(t *testing.T) {
	ts, cert, pongs := server(t)
	got := make(chan string, 100)
	fleet := New(func(c *Conn, f wsfleet.Frame) {
		c.Seq++
		got <- string(f.Payload)
	})
	defer fleet.CloseAll()

	// Many connections, each sending its first message, which comes back.
	var opened atomic.Int64
	err := fleet.DialMany(context.Background(), DialSpec{
		URL: wsURL(ts), Config: cert.ClientConfig(), From: 0, To: 20, Concurrency: 4, Rate: 1000,
		First:  func(i int) []byte { return []byte("first") },
		Opened: func(c *Conn) error { opened.Add(1); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if opened.Load() != 20 {
		t.Fatalf("opened %d, want 20", opened.Load())
	}
	for range 20 {
		select {
		case m := <-got:
			if m != "first" {
				t.Fatalf("got %q", m)
			}
		case <-time.After(wait):
			t.Fatal("echo of the first message missing")
		}
	}

	// A ping is answered; the server's close frame closes the connection with its code.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := fleet.Dial(ctx, wsURL(ts), nil, cert.ClientConfig(), 99, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(wsfleet.AppendClientFrame(nil, 1, []byte("ping")), wait); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(wait); pongs.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no pong")
		}
	}
	if err := c.Write(wsfleet.AppendClientFrame(nil, 1, []byte("close")), wait); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(wait); !c.Closed(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server's close frame did not close the connection")
		}
	}
	var ce *wsfleet.CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != 1001 || ce.Reason != "going" {
		t.Errorf("Err() = %v, want the close frame 1001 going", c.Err())
	}
	if fleet.Closed.Load() != 1 || fleet.LastErr() == nil {
		t.Errorf("Closed %d, LastErr %v", fleet.Closed.Load(), fleet.LastErr())
	}

	// Stop ends the readers and leaves the connections open.
	done := make(chan struct{})
	go func() { fleet.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Stop did not return")
	}
	if fleet.Closed.Load() != 1 {
		t.Errorf("Stop closed connections: %d", fleet.Closed.Load())
	}
}

// consume hands complete frames to the handler, keeps an incomplete one for the next
// read, and refuses a masked frame or one over maxFrame (wsfleet.ErrProtocol).
func TestConsume(t *testing.T) {
	var seen []string
	f := New(func(_ *Conn, fr wsfleet.Frame) { seen = append(seen, string(fr.Payload)) })
	c := &Conn{}
	frame := func(op byte, p string) []byte { return append([]byte{0x80 | op, byte(len(p))}, p...) }
	b := append(frame(1, "ab"), frame(2, "")...)
	b = append(b, 0x81, 126, 0x01) // an incomplete header
	tail, err := f.consume(c, nil, b)
	if err != nil || len(seen) != 2 || seen[0] != "ab" || string(tail) != string([]byte{0x81, 126, 0x01}) {
		t.Fatalf("seen %q, tail %x, err %v", seen, tail, err)
	}
	if _, err := f.consume(c, nil, []byte{0x81, 0x81, 0, 0, 0, 0, 'x'}); !errors.Is(err, wsfleet.ErrProtocol) {
		t.Errorf("masked frame: %v", err)
	}
	huge := binary.BigEndian.AppendUint64([]byte{0x81, 127}, maxFrame+1)
	if _, err := f.consume(c, nil, huge); !errors.Is(err, wsfleet.ErrProtocol) {
		t.Errorf("frame over maxFrame: %v", err)
	}
}
