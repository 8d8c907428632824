package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The behaviour that users of mizu's live rely on (design.md), one case each.

func TestHandshake(t *testing.T) {
	t.Parallel()
	allow := func(*http.Request) bool { return true }
	deny := func(*http.Request) bool { return false }
	cases := []struct {
		name       string
		opts       Options
		method     string
		header     map[string]string // "{host}" is replaced by the server's host
		want       int
		wantHeader string // "Key: value" the response must carry
	}{
		{name: "plain GET without upgrade headers is 400", header: map[string]string{"Upgrade": "", "Connection": ""}, want: 400},
		{name: "Connection without upgrade token is 400", header: map[string]string{"Connection": "keep-alive"}, want: 400},
		{name: "POST with upgrade headers is 400", method: http.MethodPost, want: 400},
		{name: "missing version is 426", header: map[string]string{"Sec-WebSocket-Version": ""}, want: 426, wantHeader: "Sec-Websocket-Version: 13"},
		{name: "version 8 is 426", header: map[string]string{"Sec-WebSocket-Version": "8"}, want: 426, wantHeader: "Sec-Websocket-Version: 13"},
		{name: "Origins mismatch is 403", opts: Options{Origins: []string{"https://a.example"}}, header: map[string]string{"Origin": "https://b.example"}, want: 403},
		{name: "Origins without Origin header is 403", opts: Options{Origins: []string{"https://a.example"}}, want: 403},
		{name: "Origins match is 101", opts: Options{Origins: []string{"https://b.example", "https://a.example"}}, header: map[string]string{"Origin": "https://a.example"}, want: 101},
		{name: "Origins star allows any origin", opts: Options{Origins: []string{"*"}}, header: map[string]string{"Origin": "https://evil.example"}, want: 101},
		{name: "CheckOrigin true overrides Origins", opts: Options{Origins: []string{"https://a.example"}, CheckOrigin: allow}, header: map[string]string{"Origin": "https://b.example"}, want: 101},
		{name: "CheckOrigin false overrides Origins star", opts: Options{Origins: []string{"*"}, CheckOrigin: deny}, want: 403},
		{name: "default accepts no Origin header", want: 101},
		{name: "default accepts same-host Origin", header: map[string]string{"Origin": "http://{host}"}, want: 101},
		{name: "default refuses cross-origin", header: map[string]string{"Origin": "http://other.example"}, want: 403},
		{name: "default refuses same host on another port", header: map[string]string{"Origin": "http://127.0.0.1:1"}, want: 403},
		{name: "missing key is 400", header: map[string]string{"Sec-WebSocket-Key": ""}, want: 400},
		{name: "key that is not base64 is 400", header: map[string]string{"Sec-WebSocket-Key": "not base64!"}, want: 400},
		{name: "key of 15 bytes is 400", header: map[string]string{"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"}, want: 400},
		// mizu's order of checks: upgrade, version, origin, auth, key.
		{name: "version is checked before origin", opts: Options{Origins: []string{"https://a.example"}}, header: map[string]string{"Sec-WebSocket-Version": "8"}, want: 426},
		{name: "origin is checked before OnAuth", opts: Options{Origins: []string{"https://a.example"}, OnAuth: failAuth}, want: 403},
		{name: "OnAuth is checked before the key", opts: Options{OnAuth: failAuth}, header: map[string]string{"Sec-WebSocket-Key": ""}, want: 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, url := testServer(t, tc.opts)
			header := map[string]string{}
			for k, v := range tc.header {
				header[k] = strings.ReplaceAll(v, "{host}", hostOf(url))
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			resp, _ := rawHandshake(t, url, method, header, nil)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.wantHeader != "" {
				k, v, _ := strings.Cut(tc.wantHeader, ": ")
				if got := resp.Header.Get(k); got != v {
					t.Fatalf("header %s = %q, want %q", k, got, v)
				}
			}
			if tc.want == 101 && resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
				t.Fatalf("Sec-WebSocket-Accept = %q", resp.Header.Get("Sec-WebSocket-Accept"))
			}
		})
	}
}

func failAuth(context.Context, *http.Request) (any, error) { return nil, errors.New("no token") }

func TestOnAuthErrorIs401AndNoSession(t *testing.T) {
	t.Parallel()
	closes := newCloseLog(t)
	var messages atomic.Int32
	srv, url := testServer(t, Options{
		OnAuth:    failAuth,
		OnMessage: func(context.Context, *Session, string, []byte) { messages.Add(1) },
		OnClose:   closes.OnClose,
	})
	_, resp, err := dialHeader(t, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial: err %v, resp %v; want 401", err, resp)
	}
	if n := openSessions(srv); n != 0 {
		t.Fatalf("%d sessions after a refused upgrade", n)
	}
	srv.Close() // waits for every OnClose there is
	if n := closes.total(); n != 0 {
		t.Fatalf("OnClose called %d times for a refused upgrade", n)
	}
}

func TestOnAuthValueIsSessionValue(t *testing.T) {
	t.Parallel()
	type user struct{ Name, Token string }
	_, url := testServer(t, Options{
		OnAuth: func(ctx context.Context, r *http.Request) (any, error) {
			return user{Name: "ada", Token: r.Header.Get("Authorization")}, nil
		},
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			u := s.Value().(user)
			b, _ := json.Marshal(u)
			s.Send(Message{Topic: "me", Data: b})
		},
	})
	c, _, err := dialHeader(t, url, http.Header{"Authorization": {"Bearer 42"}})
	if err != nil {
		t.Fatal(err)
	}
	send(t, c, `{"topic":"whoami"}`)
	if _, m := readMsg(t, c); m != `{"topic":"me","data":{"Name":"ada","Token":"Bearer 42"}}` {
		t.Fatalf("got %s", m)
	}
}

func TestDefaultIDsAre32LowercaseHexAndUnique(t *testing.T) {
	t.Parallel()
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			s.Send(Message{Topic: s.ID()})
		},
	})
	re := regexp.MustCompile(`^\{"topic":"([0-9a-f]{32})"\}$`)
	seen := map[string]bool{}
	for range 20 {
		c := dial(t, url)
		send(t, c, `{"topic":"id"}`)
		_, m := readMsg(t, c)
		sub := re.FindStringSubmatch(m)
		if sub == nil {
			t.Fatalf("id message %s: not 32 lowercase hex characters", m)
		}
		if seen[sub[1]] {
			t.Fatalf("id %s given twice", sub[1])
		}
		seen[sub[1]] = true
	}
}

func TestIDGeneratorIsUsed(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	_, url := testServer(t, Options{
		IDGenerator: func() string { return fmt.Sprintf("sess-%d", n.Add(1)) },
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			s.Send(Message{Topic: s.ID()})
		},
	})
	for i := 1; i <= 3; i++ {
		c := dial(t, url)
		send(t, c, `{"topic":"id"}`)
		if _, m := readMsg(t, c); m != fmt.Sprintf(`{"topic":"sess-%d"}`, i) {
			t.Fatalf("got %s", m)
		}
	}
}

type received struct {
	topic string
	data  string
}

func TestClientMessagesReachOnMessageExactly(t *testing.T) {
	t.Parallel()
	got := make(chan received, 16)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			got <- received{topic, string(data)}
		},
	})
	c := dial(t, url)
	cases := []struct {
		op    int
		msg   string
		topic string
		data  string
	}{
		{websocket.TextMessage, `{"topic":"room/1","data":{ "a" : [1, 2] }}`, "room/1", `{ "a" : [1, 2] }`},
		{websocket.BinaryMessage, `{"topic":"bin","data":"x\u00e9<>"}`, "bin", `"x\u00e9<>"`},
		{websocket.TextMessage, `{"topic":"no-data"}`, "no-data", ""},
		{websocket.TextMessage, `{"data":17}`, "", "17"},
		{websocket.TextMessage, `{"Topic":"case","DATA":null}`, "case", "null"},
		{websocket.TextMessage, `{"topic":"héllo ✓","data":"🙂"}`, "héllo ✓", `"🙂"`},
	}
	for _, tc := range cases {
		c.SetWriteDeadline(time.Now().Add(waitTimeout))
		if err := c.WriteMessage(tc.op, []byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		r := recv(t, got, "OnMessage")
		if r.topic != tc.topic || r.data != tc.data {
			t.Errorf("%s: got topic %q data %q, want %q %q", tc.msg, r.topic, r.data, tc.topic, tc.data)
		}
	}
}

func TestInvalidJSONIsSkippedWithoutClosing(t *testing.T) {
	t.Parallel()
	closes := newCloseLog(t)
	got := make(chan received, 16)
	srv, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			got <- received{topic, string(data)}
		},
		OnClose: closes.OnClose,
	})
	c := dial(t, url)
	for _, bad := range []string{"not json", `{"topic":`, `["topic","x"]`, `{"topic":1}`, ``, `{"topic":"x","data":nope}`} {
		send(t, c, bad)
	}
	send(t, c, `{"topic":"ok","data":1}`)
	if r := recv(t, got, "OnMessage"); r.topic != "ok" || r.data != "1" {
		t.Fatalf("first delivered message is %+v, want the valid one", r)
	}
	if n := srv.Stats().Skipped; n != 6 {
		t.Errorf("Stats.Skipped = %d, want 6", n)
	}
	send(t, c, `{"topic":"still-open"}`)
	if r := recv(t, got, "OnMessage"); r.topic != "still-open" {
		t.Fatalf("got %+v", r)
	}
	if n := closes.total(); n != 0 {
		t.Fatalf("session closed by invalid JSON")
	}
}

func TestPingIsAnsweredWithPongOfSamePayload(t *testing.T) {
	t.Parallel()
	_, url := testServer(t, Options{})
	rc := rawDial(t, url, nil)
	for _, payload := range []string{"", "hello-123", strings.Repeat("p", 125)} {
		rc.write(t, clientFrame(opPing, []byte(payload)))
		if got := rc.mustFrame(t, opPong); string(got) != payload {
			t.Fatalf("pong payload %q, want %q", got, payload)
		}
	}
	// Unsolicited pongs are ignored.
	rc.write(t, clientFrame(opPong, []byte("x")))
	rc.write(t, clientFrame(opPing, []byte("after")))
	if got := rc.mustFrame(t, opPong); string(got) != "after" {
		t.Fatalf("pong %q", got)
	}
}

func TestClientCloseFrameIsEchoedAndOnCloseGetsNil(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"code 1000", closePayload(1000, ""), "close 1000"},
		{"code 4001 with reason", closePayload(4001, "bye"), "close 4001"},
		{"code 1001", closePayload(1001, ""), "close 1001"},
		{"empty close", nil, "close"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			closes := newCloseLog(t)
			_, url := testServer(t, Options{OnClose: closes.OnClose})
			rc := rawDial(t, url, nil)
			rc.write(t, clientFrame(opClose, tc.payload))
			if got := rc.outcome(); got != tc.want {
				t.Fatalf("client saw %q, want %q", got, tc.want)
			}
			if ev := closes.next(t); ev.err != nil {
				t.Fatalf("OnClose err = %v, want nil", ev.err)
			}
		})
	}
}

func TestNoOpsOnEmptyTopicOrNilSession(t *testing.T) {
	t.Parallel()
	sessions := make(chan *Session, 1)
	srv, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) { sessions <- s },
	})
	c := dial(t, url)
	send(t, c, `{"topic":"hi"}`)
	s := recv(t, sessions, "session")

	srv.Publish("", []byte(`1`))
	srv.Publish("nobody", []byte(`1`))
	srv.Subscribe(nil, "x")
	srv.Subscribe(s, "")
	srv.Unsubscribe(nil, "x")
	srv.Unsubscribe(s, "")
	srv.Unsubscribe(s, "never-subscribed")
	if n := subscriptions(srv); n != 0 {
		t.Fatalf("%d subscriptions after no-ops", n)
	}
	srv.Publish("", []byte(`1`))
	srv.Subscribe(s, "x")
	srv.Publish("x", []byte(`"after"`))
	if _, m := readMsg(t, c); m != `{"topic":"x","data":"after"}` {
		t.Fatalf("first message is %s; an empty-topic publish got through?", m)
	}
	// A session of another server is ignored too.
	other := New(Options{})
	defer other.Close()
	other.Subscribe(s, "x")
	other.Publish("x", []byte(`1`))
}

func TestSendAfterCloseIsErrSessionClosed(t *testing.T) {
	t.Parallel()
	closes := newCloseLog(t)
	inHandler := make(chan error, 1)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			s.Close()
			inHandler <- s.Send(Message{Topic: "late"})
		},
		OnClose: closes.OnClose,
	})
	c := dial(t, url)
	send(t, c, `{"topic":"close-me"}`)
	if err := recv(t, inHandler, "Send in OnMessage"); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Send after Close in OnMessage: %v, want ErrSessionClosed", err)
	}
	ev := closes.next(t)
	if err := ev.s.Send(Message{Topic: "later", Data: []byte(`1`)}); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Send after OnClose: %v, want ErrSessionClosed", err)
	}
	if !ev.s.IsClosed() {
		t.Fatal("IsClosed is false after OnClose")
	}
}

func TestSubscribeOnClosedSessionIsNoOp(t *testing.T) {
	t.Parallel()
	closes := newCloseLog(t)
	sessions := make(chan *Session, 2)
	var srv *Server
	srv, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			if topic == "join" {
				srv.Subscribe(s, "room")
			}
			sessions <- s
		},
		OnClose: closes.OnClose,
	})
	gone := dial(t, url)
	send(t, gone, `{"topic":"hello"}`)
	goneSession := recv(t, sessions, "session")
	gone.Close()
	closes.next(t)

	srv.Subscribe(goneSession, "room") // after OnClose: must not enter the topic
	if n := subscriptions(srv); n != 0 {
		t.Fatalf("closed session was subscribed: %d subscriptions", n)
	}

	watcher := dial(t, url)
	send(t, watcher, `{"topic":"join"}`)
	recv(t, sessions, "watcher session")
	srv.Subscribe(goneSession, "room")
	if n := subscriptions(srv); n != 1 {
		t.Fatalf("%d subscriptions, want only the watcher's", n)
	}
	srv.Publish("room", []byte(`"one"`))
	if _, m := readMsg(t, watcher); m != `{"topic":"room","data":"one"}` {
		t.Fatalf("watcher got %s", m)
	}
}

func TestSendWithNilDataOmitsData(t *testing.T) {
	t.Parallel()
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			s.Send(Message{Topic: "x"})
			s.Send(Message{Topic: "y", Data: []byte{}})
			s.Send(Message{})
		},
	})
	c := dial(t, url)
	send(t, c, `{"topic":"go"}`)
	for _, want := range []string{`{"topic":"x"}`, `{"topic":"y"}`, `{}`} {
		if _, m := readMsg(t, c); m != want {
			t.Fatalf("got %s, want %s", m, want)
		}
	}
}

func TestPublishWithInvalidJSONIsDropped(t *testing.T) {
	t.Parallel()
	joined := make(chan struct{}, 1)
	var srv *Server
	srv, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			srv.Subscribe(s, "room")
			joined <- struct{}{}
		},
	})
	c := dial(t, url)
	send(t, c, `{"topic":"join"}`)
	recv(t, joined, "join")
	for _, bad := range []string{`{"bad"`, `nope`, `[1,]`, `"unterminated`, `{} {}`} {
		srv.Publish("room", []byte(bad))
	}
	srv.Publish("room", []byte(`"valid"`))
	if _, m := readMsg(t, c); m != `{"topic":"room","data":"valid"}` {
		t.Fatalf("got %s, want the first valid message", m)
	}
	if n := srv.Stats().PublishDropped; n != 5 {
		t.Errorf("Stats.PublishDropped = %d, want 5", n)
	}
}

func TestPublishBytesMatchJSONMarshal(t *testing.T) {
	t.Parallel()
	joined := make(chan *Session, 1)
	srv, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) { joined <- s },
	})
	c := dial(t, url)
	send(t, c, `{"topic":"join"}`)
	s := recv(t, joined, "join")
	topics := []string{"plain", "<b>&amp;</b>", "é \u2028 \"quoted\" \\ /"}
	datas := []string{
		` { "a" : [ 1 , 2 ,3 ] , "b" : { } } `,
		`"<script>alert('x') && 1</script>"`,
		"\"line\u2028sep and para\u2029sep\"",
		`{"html":"<>&","n":null,"t":true,"f":-1.5e10}`,
		"[\n\t1,\r\n 2\n]",
		`"\u003c already escaped \u0026"`,
		`"é 🙂 \ud83d\ude42"`,
		`12345678901234567890`,
	}
	for _, topic := range topics {
		srv.Subscribe(s, topic)
	}
	for _, topic := range topics {
		for _, data := range datas {
			want, err := json.Marshal(Message{Topic: topic, Data: json.RawMessage(data)})
			if err != nil {
				t.Fatalf("json.Marshal(%q): %v", data, err)
			}
			srv.Publish(topic, []byte(data))
			_, got := readMsg(t, c)
			if got != string(want) {
				t.Errorf("Publish(%q, %q):\n got %s\nwant %s", topic, data, got, want)
			}
			// Send encodes the same way.
			s.Send(Message{Topic: topic, Data: []byte(data)})
			if _, got := readMsg(t, c); got != string(want) {
				t.Errorf("Send(%q, %q):\n got %s\nwant %s", topic, data, got, want)
			}
		}
	}
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	const limit = 1000
	envelope := func(n int) []byte {
		prefix, suffix := `{"topic":"big","data":"`, `"}`
		return []byte(prefix + strings.Repeat("a", n-len(prefix)-len(suffix)) + suffix)
	}
	t.Run("message of ReadLimit bytes is accepted", func(t *testing.T) {
		t.Parallel()
		got := make(chan int, 1)
		_, url := testServer(t, Options{
			ReadLimit: limit,
			OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) { got <- len(data) },
		})
		c := dial(t, url)
		msg := envelope(limit)
		if len(msg) != limit {
			t.Fatalf("test bug: %d bytes", len(msg))
		}
		send(t, c, string(msg))
		if n := recv(t, got, "OnMessage"); n != limit-len(`{"topic":"big","data":}`) {
			t.Fatalf("data of %d bytes", n)
		}
	})
	t.Run("ReadLimit plus one closes with 1009", func(t *testing.T) {
		t.Parallel()
		closes := newCloseLog(t)
		var messages atomic.Int32
		_, url := testServer(t, Options{
			ReadLimit: limit,
			OnMessage: func(context.Context, *Session, string, []byte) { messages.Add(1) },
			OnClose:   closes.OnClose,
		})
		c := dial(t, url)
		send(t, c, string(envelope(limit+1)))
		if code := closeCode(t, c); code != websocket.CloseMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
		if ev := closes.next(t); !errors.Is(ev.err, ErrMessageTooLarge) {
			t.Fatalf("OnClose err = %v, want ErrMessageTooLarge", ev.err)
		}
		if messages.Load() != 0 {
			t.Fatal("oversized message reached OnMessage")
		}
	})
	t.Run("ReadLimit counts the reassembled message", func(t *testing.T) {
		t.Parallel()
		closes := newCloseLog(t)
		_, url := testServer(t, Options{ReadLimit: limit, OnClose: closes.OnClose})
		rc := rawDial(t, url, nil)
		msg := envelope(limit + 1)
		rc.write(t, buildFrame(opText, msg[:600], true))
		rc.write(t, buildFrame(finBit|opCont, msg[600:], true))
		if got := rc.outcome(); got != "close 1009" {
			t.Fatalf("client saw %q, want close 1009", got)
		}
		if ev := closes.next(t); !errors.Is(ev.err, ErrMessageTooLarge) {
			t.Fatalf("OnClose err = %v", ev.err)
		}
	})
}

func TestProtocolViolations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		wire  []byte
		code  string
		isErr error
	}{
		{"unmasked frame is 1002", buildFrame(finBit|opText, []byte(`{"topic":"x"}`), false), "close 1002", ErrProtocol},
		{"reserved opcode 3 is 1002", buildFrame(finBit|0x3, []byte("x"), true), "close 1002", ErrProtocol},
		{"reserved control opcode 0xB is 1002", buildFrame(finBit|0xb, nil, true), "close 1002", ErrProtocol},
		{"RSV1 without extension is 1002", buildFrame(finBit|0x40|opText, []byte(`{}`), true), "close 1002", ErrProtocol},
		{"continuation without start is 1002", buildFrame(finBit|opCont, []byte("x"), true), "close 1002", ErrProtocol},
		{"fragmented ping is 1002", buildFrame(opPing, nil, true), "close 1002", ErrProtocol},
		{"control frame over 125 bytes is 1002", clientFrame(opPing, bytes.Repeat([]byte("p"), 126)), "close 1002", ErrProtocol},
		{"close code 1005 on the wire is 1002", clientFrame(opClose, closePayload(1005, "")), "close 1002", ErrProtocol},
		{"close payload of 1 byte is 1002", clientFrame(opClose, []byte{3}), "close 1002", ErrProtocol},
		{"close code 999 is 1002", clientFrame(opClose, closePayload(999, "")), "close 1002", ErrProtocol},
		{"close code 1004 is 1002", clientFrame(opClose, closePayload(1004, "")), "close 1002", ErrProtocol},
		{"close code 5000 is 1002", clientFrame(opClose, closePayload(5000, "")), "close 1002", ErrProtocol},
		{"new text frame inside a fragmented message is 1002", append(buildFrame(opText, []byte(`{"to`), true), clientFrame(opText, []byte(`{}`))...), "close 1002", ErrProtocol},
		{"64-bit length with the top bit set is 1002", append([]byte{finBit | opText, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, testMask[:]...), "close 1002", ErrProtocol},
		{"declared length of 2^62 is 1009 at once", append([]byte{finBit | opText, 0x80 | 127, 0x40, 0, 0, 0, 0, 0, 0, 0}, testMask[:]...), "close 1009", ErrMessageTooLarge},
		{"invalid UTF-8 text is 1007", clientFrame(opText, []byte("{\"topic\":\"\xff\xfe\"}")), "close 1007", ErrInvalidUTF8},
		{"invalid UTF-8 close reason is 1007", clientFrame(opClose, closePayload(1000, "\xff")), "close 1007", ErrInvalidUTF8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			closes := newCloseLog(t)
			var messages atomic.Int32
			_, url := testServer(t, Options{
				OnMessage: func(context.Context, *Session, string, []byte) { messages.Add(1) },
				OnClose:   closes.OnClose,
			})
			rc := rawDial(t, url, nil)
			rc.write(t, tc.wire)
			if got := rc.outcome(); got != tc.code {
				t.Fatalf("client saw %q, want %q", got, tc.code)
			}
			if ev := closes.next(t); !errors.Is(ev.err, tc.isErr) {
				t.Fatalf("OnClose err = %v, want %v", ev.err, tc.isErr)
			}
			if messages.Load() != 0 {
				t.Fatal("a bad frame reached OnMessage")
			}
		})
	}
}

func TestFragmentedMessageWithPingsBetweenIsDeliveredOnce(t *testing.T) {
	t.Parallel()
	got := make(chan received, 4)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			got <- received{topic, string(data)}
		},
	})
	rc := rawDial(t, url, nil)
	rc.write(t, buildFrame(opText, []byte(`{"topic":"fr`), true))
	rc.write(t, clientFrame(opPing, []byte("between-1")))
	if p := rc.mustFrame(t, opPong); string(p) != "between-1" {
		t.Fatalf("pong %q", p)
	}
	// A UTF-8 sequence split across fragments is fine.
	rc.write(t, buildFrame(opCont, []byte("ag\xc3"), true))
	rc.write(t, clientFrame(opPing, []byte("between-2")))
	rc.write(t, buildFrame(finBit|opCont, []byte("\xa9\",\"data\":[1, 2]}"), true))
	if p := rc.mustFrame(t, opPong); string(p) != "between-2" {
		t.Fatalf("pong %q", p)
	}
	if r := recv(t, got, "OnMessage"); r.topic != "fragé" || r.data != "[1, 2]" {
		t.Fatalf("got %+v", r)
	}
	rc.write(t, clientFrame(opText, []byte(`{"topic":"next"}`)))
	if r := recv(t, got, "OnMessage"); r.topic != "next" {
		t.Fatalf("got %+v: the fragmented message was delivered twice?", r)
	}
}

func TestOneMiBMessagesBothWays(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	data, _ := json.Marshal(string(big))
	got := make(chan []byte, 1)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			got <- data
			s.Send(Message{Topic: "back", Data: data})
		},
	})
	c := dial(t, url)
	msg, _ := json.Marshal(Message{Topic: "big", Data: data})
	send(t, c, string(msg))
	if d := recv(t, got, "OnMessage"); !bytes.Equal(d, data) {
		t.Fatalf("server got %d bytes, not the %d sent", len(d), len(data))
	}
	want, _ := json.Marshal(Message{Topic: "back", Data: data})
	if _, m := readMsg(t, c); m != string(want) {
		t.Fatalf("client got %d bytes, want %d", len(m), len(want))
	}
}

func TestFirstFrameInSameWriteAsUpgradeIsNotLost(t *testing.T) {
	t.Parallel()
	got := make(chan received, 4)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			got <- received{topic, string(data)}
			s.Send(Message{Topic: "ack"})
		},
	})
	first := append(clientFrame(opText, []byte(`{"topic":"first","data":1}`)), clientFrame(opText, []byte(`{"topic":"second"}`))...)
	first = append(first, buildFrame(opText, []byte(`{"topic":"th`), true)...) // and a partial third
	rc := rawDial(t, url, first)
	if r := recv(t, got, "first"); r.topic != "first" || r.data != "1" {
		t.Fatalf("got %+v", r)
	}
	if r := recv(t, got, "second"); r.topic != "second" {
		t.Fatalf("got %+v", r)
	}
	rc.write(t, buildFrame(finBit|opCont, []byte(`ird"}`), true))
	if r := recv(t, got, "third"); r.topic != "third" {
		t.Fatalf("got %+v", r)
	}
	for range 3 {
		if p := rc.mustFrame(t, opText); string(p) != `{"topic":"ack"}` {
			t.Fatalf("got %s", p)
		}
	}
}

func TestOnMessageContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctxs := make(chan context.Context, 1)
	closes := newCloseLog(t)
	_, url := serveWrapped(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) { ctxs <- ctx },
		OnClose:   closes.OnClose,
	}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, "from-middleware")))
		})
	})
	c := dial(t, url)
	send(t, c, `{"topic":"x"}`)
	ctx := recv(t, ctxs, "OnMessage ctx")
	if v := ctx.Value(key{}); v != "from-middleware" {
		t.Fatalf("ctx.Value = %v, want the middleware's value", v)
	}
	// Checked from this goroutine after OnMessage returned, as a handler's goroutine would.
	time.Sleep(50 * time.Millisecond)
	select {
	case <-ctx.Done():
		t.Fatalf("ctx done while the session is open: %v", ctx.Err())
	default:
	}
	if ctx.Err() != nil {
		t.Fatalf("ctx.Err() = %v while open", ctx.Err())
	}
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("ctx has a deadline")
	}
	c.Close()
	select {
	case <-ctx.Done():
	case <-time.After(waitTimeout):
		t.Fatal("ctx not done after the session closed")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("ctx.Err() = %v, want context.Canceled", ctx.Err())
	}
	closes.next(t)
}

func TestOnMessageDataIsTheCalleesToKeep(t *testing.T) {
	t.Parallel()
	const n = 200
	kept := make(chan []byte, n)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) { kept <- data },
	})
	rc := rawDial(t, url, nil)
	var wire []byte
	for i := range n { // many messages per read, so a reused buffer would show
		wire = append(wire, clientFrame(opText, []byte(fmt.Sprintf(`{"topic":"k","data":"%04d-%s"}`, i, strings.Repeat("z", i))))...)
	}
	rc.write(t, wire)
	var all [][]byte
	for range n {
		all = append(all, recv(t, kept, "OnMessage"))
	}
	for i, d := range all {
		if want := fmt.Sprintf(`"%04d-%s"`, i, strings.Repeat("z", i)); string(d) != want {
			t.Fatalf("data %d changed after OnMessage returned: %q", i, d)
		}
	}
}

func TestPublishDoesNotKeepData(t *testing.T) {
	t.Parallel()
	joined := make(chan struct{}, 1)
	var srv *Server
	srv, url := testServer(t, Options{
		QueueSize:  1024,
		QueueBytes: 1 << 30, // 400 frames of 128 KiB buffers must fit
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			srv.Subscribe(s, "t")
			joined <- struct{}{}
		},
	})
	rc, err := dialIdle(url, 0) // not reading yet: once the socket is full, frames queue
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	rc.write(t, clientFrame(opText, []byte(`{"topic":"join"}`)))
	recv(t, joined, "join")
	const n = 400 // 400 × 64 KiB: more than loopback socket buffers hold
	buf := make([]byte, 64<<10)
	before := srv.Stats().BytesOut
	for i := range n {
		copy(buf, fmt.Sprintf(`"%04d`, i))
		for j := 5; j < len(buf)-1; j++ {
			buf[j] = 'a' + byte(i%26)
		}
		buf[len(buf)-1] = '"'
		srv.Publish("t", buf)
		for j := range buf { // the caller reuses its buffer at once
			buf[j] = '!'
		}
	}
	if out := srv.Stats().BytesOut - before; out >= n*uint64(len(buf)) {
		t.Logf("all %d bytes went straight to the socket; the queue was not exercised", out)
	}
	for i := range n {
		p := rc.mustFrame(t, opText)
		want := fmt.Sprintf(`{"topic":"t","data":"%04d%s"}`, i, strings.Repeat(string(rune('a'+i%26)), len(buf)-6))
		if string(p) != want {
			t.Fatalf("message %d altered: %.40s...", i, p)
		}
	}
}

// A blocking OnMessage holds its own session only: other sessions are served meanwhile,
// and the blocked session's later messages follow in order once it returns.
func TestBlockingOnMessageHoldsOnlyItsSession(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	got := make(chan string, 16)
	_, url := testServer(t, Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			if topic == "block" {
				select {
				case <-release:
				case <-time.After(waitTimeout):
				}
			}
			got <- topic
			s.Send(Message{Topic: topic})
		},
	})
	blocked := dial(t, url)
	send(t, blocked, `{"topic":"block"}`)
	send(t, blocked, `{"topic":"after-1"}`)
	send(t, blocked, `{"topic":"after-2"}`)
	other := dial(t, url)
	for i := range 5 {
		topic := fmt.Sprintf("other-%d", i)
		send(t, other, `{"topic":"`+topic+`"}`)
		if _, m := readMsg(t, other); m != `{"topic":"`+topic+`"}` {
			t.Fatalf("other session got %s while one OnMessage blocks", m)
		}
		if g := recv(t, got, "OnMessage"); g != topic {
			t.Fatalf("OnMessage %s ran before the blocked one returned", g)
		}
	}
	close(release)
	for _, want := range []string{"block", "after-1", "after-2"} {
		if _, m := readMsg(t, blocked); m != `{"topic":"`+want+`"}` {
			t.Fatalf("got %s, want %s", m, want)
		}
	}
}
