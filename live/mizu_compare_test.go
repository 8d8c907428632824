package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mizu/mizu"
	mizulive "github.com/go-mizu/mizu/live"
)

// The same cases against mizu's live (v0.5.26) and livepoll's, through a small adapter,
// so each case is written once. Where the two differ, the case says why; the reasons are
// design.md's deliberate differences.

// cmpSession and cmpServer are what the cases need of either implementation.
type cmpSession interface {
	ID() string
	Value() any
	Send(Message) error
	Close() error
	IsClosed() bool
}

type cmpServer interface {
	Publish(topic string, data []byte)
	Subscribe(s cmpSession, topic string)
}

type cmpOptions struct {
	QueueSize   int
	ReadLimit   int
	Origins     []string
	CheckOrigin func(*http.Request) bool
	OnAuth      func(context.Context, *http.Request) (any, error)
	OnMessage   func(ctx context.Context, s cmpSession, topic string, data []byte)
	OnClose     func(s cmpSession, err error)
}

type implementation struct {
	name string
	// handler builds a server and its http.Handler.
	handler func(cmpOptions) (cmpServer, http.Handler, func())
	// errors the cases compare with errors.Is
	errQueueFull, errSessionClosed error
}

var implementations = []implementation{
	{
		name: "livepoll",
		handler: func(o cmpOptions) (cmpServer, http.Handler, func()) {
			opts := Options{QueueSize: o.QueueSize, ReadLimit: o.ReadLimit, Origins: o.Origins, CheckOrigin: o.CheckOrigin, OnAuth: o.OnAuth}
			if o.OnMessage != nil {
				opts.OnMessage = func(ctx context.Context, s *Session, topic string, data []byte) { o.OnMessage(ctx, s, topic, data) }
			}
			if o.OnClose != nil {
				opts.OnClose = func(s *Session, err error) { o.OnClose(s, err) }
			}
			srv := New(opts)
			return lpServer{srv}, srv.Handler(), func() { srv.Close() }
		},
		errQueueFull: ErrQueueFull, errSessionClosed: ErrSessionClosed,
	},
	{
		name: "mizu",
		handler: func(o cmpOptions) (cmpServer, http.Handler, func()) {
			opts := mizulive.Options{QueueSize: o.QueueSize, ReadLimit: o.ReadLimit, Origins: o.Origins, CheckOrigin: o.CheckOrigin, OnAuth: o.OnAuth}
			if o.OnMessage != nil {
				opts.OnMessage = func(ctx context.Context, s *mizulive.Session, topic string, data []byte) {
					o.OnMessage(ctx, mzSession{s}, topic, data)
				}
			}
			if o.OnClose != nil {
				opts.OnClose = func(s *mizulive.Session, err error) { o.OnClose(mzSession{s}, err) }
			}
			srv := mizulive.New(opts)
			// mizu has no Close: its goroutines end when the client connections close.
			return mzServer{srv}, srv.Handler(), func() {}
		},
		errQueueFull: mizulive.ErrQueueFull, errSessionClosed: mizulive.ErrSessionClosed,
	},
}

type lpServer struct{ *Server }

func (s lpServer) Subscribe(ss cmpSession, topic string) { s.Server.Subscribe(ss.(*Session), topic) }

type mzServer struct{ *mizulive.Server }

func (s mzServer) Subscribe(ss cmpSession, topic string) {
	s.Server.Subscribe(ss.(mzSession).Session, topic)
}

type mzSession struct{ *mizulive.Session }

func (s mzSession) Send(m Message) error {
	return s.Session.Send(mizulive.Message{Topic: m.Topic, Data: m.Data})
}

// serve starts impl on an httptest server, mounted directly or on a mizu router; it
// returns the ws URL. Client connections opened later are closed first at cleanup, which
// is what ends mizu's per-connection goroutines.
func (impl implementation) serve(t *testing.T, o cmpOptions, onMizuRouter bool) (cmpServer, string) {
	t.Helper()
	srv, h, closeSrv := impl.handler(o)
	path := ""
	if onMizuRouter {
		app := mizu.New()
		app.Compat.Handle("/ws", h)
		h, path = app, "/ws"
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		closeSrv()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + path
}

type compareCase struct {
	name string
	// run returns the observed outcome as a short string.
	run func(t *testing.T, impl implementation) string
	// want holds the expected outcome per implementation; "a|b" accepts either.
	want map[string]string
	// why explains a difference (required when the wants differ).
	why string
}

func same(outcome string) map[string]string {
	return map[string]string{"livepoll": outcome, "mizu": outcome}
}

func statusOf(t *testing.T, impl implementation, o cmpOptions, method string, header map[string]string) string {
	_, url := impl.serve(t, o, false)
	resp, _ := rawHandshake(t, url, method, header, nil)
	return fmt.Sprint(resp.StatusCode)
}

// messages collects OnMessage calls as "topic data" strings.
func messages() (chan string, func(context.Context, cmpSession, string, []byte)) {
	ch := make(chan string, 64)
	return ch, func(ctx context.Context, s cmpSession, topic string, data []byte) {
		select {
		case ch <- topic + " " + string(data):
		default:
		}
	}
}

// closeErrs collects OnClose errors without blocking (mizu may call it after the test).
func closeErrs() (chan error, func(cmpSession, error)) {
	ch := make(chan error, 64)
	return ch, func(s cmpSession, err error) {
		select {
		case ch <- err:
		default:
		}
	}
}

// delivered reports whether wire (sent after the handshake) reached OnMessage, and how
// the connection ended if it did not.
func deliveredOrClosed(t *testing.T, impl implementation, o cmpOptions, wire ...[]byte) string {
	got, onMessage := messages()
	o.OnMessage = onMessage
	_, url := impl.serve(t, o, false)
	rc := rawDial(t, url, nil)
	for _, w := range wire {
		rc.write(t, w)
	}
	select {
	case <-got:
		return "delivered"
	case <-time.After(500 * time.Millisecond):
	}
	rc.SetReadDeadline(time.Now().Add(waitTimeout))
	return rc.outcome()
}

// closeFrameAfterSessionClose calls Session.Close (from OnMessage or from another
// goroutine) on 20 sessions and reports how many clients got the close frame 1000.
func closeFrameAfterSessionClose(t *testing.T, impl implementation, fromOnMessage bool) string {
	sessions := make(chan cmpSession, 1)
	_, url := impl.serve(t, cmpOptions{OnMessage: func(ctx context.Context, s cmpSession, topic string, data []byte) {
		if fromOnMessage {
			s.Close()
			return
		}
		sessions <- s
	}}, false)
	outcomes := map[string]int{}
	const n = 20
	for range n {
		rc := rawDial(t, url, nil)
		rc.write(t, clientFrame(opText, []byte(`{"topic":"close me"}`)))
		if !fromOnMessage {
			recv(t, sessions, "session").Close()
		}
		outcomes[rc.outcome()]++
		rc.Close()
	}
	if outcomes["close 1000"] == n {
		return "close 1000 every time"
	}
	return fmt.Sprintf("close frame lost %d of %d times", n-outcomes["close 1000"], n)
}

var compareCases = []compareCase{
	{
		name: "plain GET is 400",
		run: func(t *testing.T, impl implementation) string {
			return statusOf(t, impl, cmpOptions{}, http.MethodGet, map[string]string{"Upgrade": "", "Connection": ""})
		},
		want: same("400"),
	},
	{
		name: "POST with upgrade headers",
		run: func(t *testing.T, impl implementation) string {
			return statusOf(t, impl, cmpOptions{}, http.MethodPost, nil)
		},
		want: map[string]string{"livepoll": "400", "mizu": "101"},
		why:  "RFC 6455 4.1: the handshake is a GET; mizu only looks at the upgrade headers",
	},
	{
		name: "wrong version is 426 with Sec-WebSocket-Version 13",
		run: func(t *testing.T, impl implementation) string {
			_, url := impl.serve(t, cmpOptions{}, false)
			resp, _ := rawHandshake(t, url, http.MethodGet, map[string]string{"Sec-WebSocket-Version": "8"}, nil)
			return fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Version"))
		},
		want: same("426 13"),
	},
	{
		name: "cross-origin request with neither Origins nor CheckOrigin",
		run: func(t *testing.T, impl implementation) string {
			return statusOf(t, impl, cmpOptions{}, http.MethodGet, map[string]string{"Origin": "https://evil.example"})
		},
		want: map[string]string{"livepoll": "403", "mizu": "101"},
		why:  "same-origin default (as gorilla and coder/websocket): mizu lets any web page connect with the user's cookies",
	},
	{
		name: "request without Origin and no Origins",
		run: func(t *testing.T, impl implementation) string {
			return statusOf(t, impl, cmpOptions{}, http.MethodGet, nil)
		},
		want: same("101"),
	},
	{
		name: "Origins mismatch is 403",
		run: func(t *testing.T, impl implementation) string {
			return statusOf(t, impl, cmpOptions{Origins: []string{"https://a.example"}}, http.MethodGet, map[string]string{"Origin": "https://b.example"})
		},
		want: same("403"),
	},
	{
		name: "CheckOrigin overrides Origins",
		run: func(t *testing.T, impl implementation) string {
			o := cmpOptions{Origins: []string{"https://a.example"}, CheckOrigin: func(*http.Request) bool { return true }}
			return statusOf(t, impl, o, http.MethodGet, map[string]string{"Origin": "https://b.example"})
		},
		want: same("101"),
	},
	{
		name: "OnAuth error is 401 and no session",
		run: func(t *testing.T, impl implementation) string {
			errs, onClose := closeErrs()
			status := statusOf(t, impl, cmpOptions{OnAuth: failAuth, OnClose: onClose}, http.MethodGet, nil)
			select {
			case <-errs:
				return status + ", OnClose called"
			case <-time.After(100 * time.Millisecond):
				return status + ", no OnClose"
			}
		},
		want: same("401, no OnClose"),
	},
	{
		name: "missing key is 400",
		run: func(t *testing.T, impl implementation) string {
			return statusOf(t, impl, cmpOptions{}, http.MethodGet, map[string]string{"Sec-WebSocket-Key": ""})
		},
		want: same("400"),
	},
	{
		name: "OnAuth value is Session.Value",
		run: func(t *testing.T, impl implementation) string {
			got, onMessage := messages()
			_, url := impl.serve(t, cmpOptions{
				OnAuth: func(context.Context, *http.Request) (any, error) { return "ada", nil },
				OnMessage: func(ctx context.Context, s cmpSession, topic string, data []byte) {
					onMessage(ctx, s, fmt.Sprint(s.Value()), data)
				},
			}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opText, []byte(`{"topic":"x"}`)))
			return recv(t, got, "OnMessage")
		},
		want: same("ada "),
	},
	{
		name: "text and binary messages reach OnMessage with exact bytes",
		run: func(t *testing.T, impl implementation) string {
			got, onMessage := messages()
			_, url := impl.serve(t, cmpOptions{OnMessage: onMessage}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opText, []byte(`{"topic":"t","data":{ "a" : 1 }}`)))
			rc.write(t, clientFrame(opBinary, []byte(`{"topic":"b","data":[1, 2]}`)))
			return recv(t, got, "text") + "; " + recv(t, got, "binary")
		},
		want: same(`t { "a" : 1 }; b [1, 2]`),
	},
	{
		name: "invalid JSON is skipped and the next message arrives",
		run: func(t *testing.T, impl implementation) string {
			got, onMessage := messages()
			_, url := impl.serve(t, cmpOptions{OnMessage: onMessage}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opText, []byte(`not json`)))
			rc.write(t, clientFrame(opText, []byte(`{"topic":"ok"}`)))
			return recv(t, got, "OnMessage")
		},
		want: same("ok "),
	},
	{
		name: "ping gets a pong with the same payload",
		run: func(t *testing.T, impl implementation) string {
			_, url := impl.serve(t, cmpOptions{}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opPing, []byte("hello")))
			b0, p, err := rc.readFrame()
			if err != nil {
				return err.Error()
			}
			return fmt.Sprintf("opcode %d %s", b0&0x0f, p)
		},
		want: same("opcode 10 hello"),
	},
	{
		name: "client close frame",
		run: func(t *testing.T, impl implementation) string {
			errs, onClose := closeErrs()
			_, url := impl.serve(t, cmpOptions{OnClose: onClose}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opClose, closePayload(4001, "bye")))
			out := rc.outcome()
			return fmt.Sprintf("%s, OnClose %v", out, recv(t, errs, "OnClose"))
		},
		want: map[string]string{"livepoll": "close 4001, OnClose <nil>", "mizu": "EOF, OnClose <nil>|close 1000, OnClose <nil>"},
		why:  "RFC 6455 5.5.1: the endpoint answers with a close frame echoing the code; mizu closes the socket at once",
	},
	{
		name: "client closes TCP without a close frame",
		run: func(t *testing.T, impl implementation) string {
			errs, onClose := closeErrs()
			_, url := impl.serve(t, cmpOptions{OnClose: onClose}, false)
			rc := rawDial(t, url, nil)
			rc.Close()
			return fmt.Sprintf("OnClose io.EOF: %v", errors.Is(recv(t, errs, "OnClose"), io.EOF))
		},
		want: same("OnClose io.EOF: true"),
	},
	{
		name: "fragmented message",
		run: func(t *testing.T, impl implementation) string {
			return deliveredOrClosed(t, impl, cmpOptions{},
				buildFrame(opText, []byte(`{"topic":`), true),
				buildFrame(finBit|opCont, []byte(`"frag"}`), true))
		},
		want: map[string]string{"livepoll": "delivered", "mizu": "EOF|close 1000"},
		why:  "RFC 6455 5.4: fragmented messages are legal and must be reassembled; mizu drops the connection",
	},
	{
		name: "unmasked client frame",
		run: func(t *testing.T, impl implementation) string {
			return deliveredOrClosed(t, impl, cmpOptions{}, buildFrame(finBit|opText, []byte(`{"topic":"x"}`), false))
		},
		want: map[string]string{"livepoll": "close 1002", "mizu": "EOF|close 1000"},
		why:  "RFC 6455 5.1/7.4.1: close with 1002 (protocol error); mizu drops the connection without a code",
	},
	{
		name: "invalid UTF-8 in a text message",
		run: func(t *testing.T, impl implementation) string {
			return deliveredOrClosed(t, impl, cmpOptions{}, clientFrame(opText, []byte("{\"topic\":\"\xff\"}")))
		},
		want: map[string]string{"livepoll": "close 1007", "mizu": "delivered"},
		why:  "RFC 6455 8.1: invalid UTF-8 in a text frame fails the connection with 1007; mizu does not check",
	},
	{
		name: "message over ReadLimit",
		run: func(t *testing.T, impl implementation) string {
			return deliveredOrClosed(t, impl, cmpOptions{ReadLimit: 100}, clientFrame(opText, []byte(`{"topic":"x","data":"`+strings.Repeat("a", 100)+`"}`)))
		},
		want: map[string]string{"livepoll": "close 1009", "mizu": "EOF|close 1000"},
		why:  "RFC 6455 7.4.1: 1009 says why; mizu drops the connection",
	},
	{
		name: "Session.Close from OnMessage sends close 1000",
		run: func(t *testing.T, impl implementation) string {
			return closeFrameAfterSessionClose(t, impl, true)
		},
		want: map[string]string{"livepoll": "close 1000 every time", "mizu": "close frame lost [0-9]+ of 20 times|close 1000 every time"},
		why:  "livepoll sends the close frame, shuts down writing and waits for the client; mizu closes the socket while its writer may still be sending the frame (usually lost)",
	},
	{
		name: "Session.Close from another goroutine sends close 1000",
		run: func(t *testing.T, impl implementation) string {
			return closeFrameAfterSessionClose(t, impl, false)
		},
		want: map[string]string{"livepoll": "close 1000 every time", "mizu": "close frame lost [0-9]+ of 20 times|close 1000 every time"},
		why:  "as above",
	},
	{
		name: "Send after close is ErrSessionClosed",
		run: func(t *testing.T, impl implementation) string {
			errs := make(chan error, 1)
			_, url := impl.serve(t, cmpOptions{OnMessage: func(ctx context.Context, s cmpSession, topic string, data []byte) {
				s.Close()
				errs <- s.Send(Message{Topic: "x"})
			}}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opText, []byte(`{"topic":"x"}`)))
			return fmt.Sprint(errors.Is(recv(t, errs, "Send"), impl.errSessionClosed))
		},
		want: same("true"),
	},
	{
		name: "ctx of OnMessage",
		run: func(t *testing.T, impl implementation) string {
			ctxs := make(chan context.Context, 1)
			inOnClose := make(chan string, 1)
			var saved atomic.Pointer[context.Context]
			_, url := impl.serve(t, cmpOptions{
				OnMessage: func(ctx context.Context, s cmpSession, topic string, data []byte) {
					saved.Store(&ctx)
					ctxs <- ctx
				},
				OnClose: func(s cmpSession, err error) {
					state := "live"
					if p := saved.Load(); p != nil && (*p).Err() != nil {
						state = "canceled"
					}
					inOnClose <- state
				},
			}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opText, []byte(`{"topic":"x"}`)))
			ctx := recv(t, ctxs, "ctx")
			time.Sleep(50 * time.Millisecond)
			afterReturn := "live"
			if ctx.Err() != nil {
				afterReturn = "canceled"
			}
			rc.Close()
			closing := recv(t, inOnClose, "OnClose")
			afterClose := "live"
			select {
			case <-ctx.Done():
				afterClose = "canceled"
			case <-time.After(waitTimeout):
			}
			return fmt.Sprintf("after OnMessage returned: %s; in OnClose: %s; after close: %s", afterReturn, closing, afterClose)
		},
		// mizu's ctx is the request's: mizu reads through net/http's hijacked bufio.Reader,
		// whose connReader cancels the request ctx on the first read error, i.e. before
		// OnClose. livepoll's handler returns at once (net/http would cancel the request ctx
		// then), so the session owns its ctx and cancels it when the close starts: the same.
		want: same("after OnMessage returned: live; in OnClose: canceled; after close: canceled"),
	},
	{
		name: "mounted on a mizu router with app.Compat.Handle",
		run: func(t *testing.T, impl implementation) string {
			_, url := impl.serve(t, cmpOptions{}, true)
			resp, _ := rawHandshake(t, url, http.MethodGet, nil, nil)
			return fmt.Sprint(resp.StatusCode)
		},
		want: map[string]string{"livepoll": "101", "mizu": "500"},
		why:  "mizu's router wraps the ResponseWriter; mizu's live asserts http.Hijacker and fails, livepoll hijacks through http.ResponseController, which follows Unwrap",
	},
	{
		name: "Send with nil data",
		run: func(t *testing.T, impl implementation) string {
			_, url := impl.serve(t, cmpOptions{OnMessage: func(ctx context.Context, s cmpSession, topic string, data []byte) {
				s.Send(Message{Topic: "x"})
			}}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opText, []byte(`{"topic":"go"}`)))
			return string(rc.mustFrame(t, opText))
		},
		want: same(`{"topic":"x"}`),
	},
	{
		name: "Publish bytes equal json.Marshal, invalid data dropped",
		run: func(t *testing.T, impl implementation) string {
			joined := make(chan struct{}, 1)
			var srv cmpServer
			srv, url := impl.serve(t, cmpOptions{OnMessage: func(ctx context.Context, s cmpSession, topic string, data []byte) {
				srv.Subscribe(s, "t<&>")
				joined <- struct{}{}
			}}, false)
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opText, []byte(`{"topic":"join"}`)))
			recv(t, joined, "join")
			var out []string
			for _, data := range []string{`{"bad"`, " { \"h\" : \"<a>&\u2028\" } "} {
				srv.Publish("t<&>", []byte(data))
			}
			want, _ := json.Marshal(Message{Topic: "t<&>", Data: json.RawMessage(" { \"h\" : \"<a>&\u2028\" } ")})
			got := rc.mustFrame(t, opText)
			out = append(out, fmt.Sprintf("identical: %v", string(got) == string(want)))
			return strings.Join(out, ", ")
		},
		want: same("identical: true"),
	},
	{
		name: "a client that never reads is closed with ErrQueueFull",
		run: func(t *testing.T, impl implementation) string {
			errs, onClose := closeErrs()
			joined := make(chan struct{}, 1)
			var srv cmpServer
			srv, url := impl.serve(t, cmpOptions{QueueSize: 16, OnClose: onClose, OnMessage: func(ctx context.Context, s cmpSession, topic string, data []byte) {
				srv.Subscribe(s, "feed")
				joined <- struct{}{}
			}}, false)
			rc, err := dialIdle(url, 4096)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rc.Close() })
			rc.write(t, clientFrame(opText, []byte(`{"topic":"join"}`)))
			recv(t, joined, "join")
			data := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
			for range 1000 {
				srv.Publish("feed", data)
				select {
				case err := <-errs:
					return fmt.Sprintf("ErrQueueFull: %v", errors.Is(err, impl.errQueueFull))
				default:
				}
			}
			select {
			case err := <-errs:
				return fmt.Sprintf("ErrQueueFull: %v", errors.Is(err, impl.errQueueFull))
			case <-time.After(waitTimeout):
				return "still open"
			}
		},
		want: same("ErrQueueFull: true"),
	},
}

func TestCompareWithMizu(t *testing.T) {
	t.Parallel()
	for _, tc := range compareCases {
		if tc.want["livepoll"] != tc.want["mizu"] && tc.why == "" {
			t.Errorf("%s: the implementations differ and the case does not say why", tc.name)
		}
		for _, impl := range implementations {
			t.Run(tc.name+"/"+impl.name, func(t *testing.T) {
				t.Parallel()
				got := tc.run(t, impl)
				t.Logf("%s: %s", impl.name, got)
				for _, want := range strings.Split(tc.want[impl.name], "|") {
					if matchOutcome(want, got) {
						return
					}
				}
				msg := fmt.Sprintf("%s: got %q, want %q", impl.name, got, tc.want[impl.name])
				if tc.why != "" {
					msg += " (" + tc.why + ")"
				}
				t.Error(msg)
			})
		}
	}
}

// matchOutcome compares literally, except that "[0-9]+" in want matches a number.
func matchOutcome(want, got string) bool {
	before, after, ok := strings.Cut(want, "[0-9]+")
	if !ok {
		return want == got
	}
	if !strings.HasPrefix(got, before) || !strings.HasSuffix(got, after) || len(got) < len(before)+len(after)+1 {
		return false
	}
	num := got[len(before) : len(got)-len(after)]
	return strings.Trim(num, "0123456789") == ""
}
