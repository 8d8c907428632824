package interop

import (
	"encoding/json"
	"strings"
	"testing"
)

// msg is one message a client received, or how its connection ended instead.
type msg struct {
	Text   string     `json:"text"`
	Binary bool       `json:"binary"`
	Closed *closeInfo `json:"closed,omitempty"`
	Error  string     `json:"error,omitempty"`
}

type closeInfo struct {
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	WasClean bool   `json:"wasClean"`
	Error    string `json:"error,omitempty"`
}

// report is what a client saw running the checks (checks.mjs or runGoChecks); JSON keys
// are those of checks.mjs.
type report struct {
	Client      string `json:"client"`
	Version     string `json:"version"`
	Extensions  string `json:"extensions"` // the WebSocket's extensions attribute
	Browser     string `json:"browserVersion"`
	BSubscribed msg    `json:"bSubscribed"`
	Subscribed  msg    `json:"subscribed"`
	Published   msg    `json:"published"`
	BPublished  msg    `json:"bPublished"`
	Echo        msg    `json:"echo"`
	BinaryEcho  msg    `json:"binaryEcho"`
	Big         struct {
		Len    int    `json:"len"`
		Equal  bool   `json:"equal"`
		Binary bool   `json:"binary"`
		Error  string `json:"error"`
	} `json:"big"`
	// Ping is nil for a client whose API cannot send pings (a browser).
	Ping *struct {
		OK      bool   `json:"ok"`
		Payload string `json:"payload"`
		Error   string `json:"error"`
	} `json:"ping"`
	AfterIdle msg       `json:"afterIdle"`
	BClose    closeInfo `json:"bClose"`
	Close     closeInfo `json:"close"`
	Error     string    `json:"error"`
}

const (
	bigSize     = 1 << 20
	pingPayload = "interop-ping"
)

// bigEcho is the server's reply to the 1 MiB echo: {"topic":"echo","data":"<1 MiB>"}.
const bigEchoLen = len(`{"topic":"echo","data":""}`) + bigSize

// checkReport asserts a client's report and then that OnClose got nil for both of the
// client's sessions.
func checkReport(t *testing.T, a *app, name string, r report, wantPing bool) {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("%s: %s", name, r.Error)
	}
	wantExt := ""
	if a.compress {
		wantExt = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	}
	// ws's extensions attribute holds the extension's name only, Chromium's the whole answer.
	if r.Extensions != wantExt && !(name == "ws" && a.compress && r.Extensions == "permessage-deflate") {
		t.Errorf("%s negotiated extensions %q, want %q", name, r.Extensions, wantExt)
	}
	text := func(what string, m msg, want string) {
		t.Helper()
		switch {
		case m.Error != "":
			t.Errorf("%s %s: %s", name, what, m.Error)
		case m.Closed != nil:
			t.Errorf("%s %s: connection closed instead: %+v", name, what, *m.Closed)
		case m.Binary:
			t.Errorf("%s %s: binary frame, want text", name, what)
		case m.Text != want:
			t.Errorf("%s %s:\n got %s\nwant %s", name, what, m.Text, want)
		}
	}
	text("subscribe (b)", r.BSubscribed, `{"topic":"subscribed","data":{"topic":"room"}}`)
	text("subscribe", r.Subscribed, `{"topic":"subscribed","data":{"topic":"room"}}`)
	const pub = `{"topic":"room","data":{"text":"\u003chi\u003e é ☃"}}`
	text("publish, received by the publisher", r.Published, pub)
	text("publish, received by the other subscriber", r.BPublished, pub)
	text("echo", r.Echo, `{"topic":"echo","data":[1,2,3]}`)
	text("echo of a binary frame", r.BinaryEcho, `{"topic":"echo","data":{"binary":true}}`)
	switch {
	case r.Big.Error != "":
		t.Errorf("%s 1 MiB echo: %s", name, r.Big.Error)
	case r.Big.Len != bigEchoLen || !r.Big.Equal || r.Big.Binary:
		t.Errorf("%s 1 MiB echo: len %d (want %d), equal %v, binary %v", name, r.Big.Len, bigEchoLen, r.Big.Equal, r.Big.Binary)
	}
	if wantPing {
		switch {
		case r.Ping == nil:
			t.Errorf("%s ping: not run", name)
		case r.Ping.Error != "" || !r.Ping.OK:
			t.Errorf("%s ping: %+v", name, *r.Ping)
		case r.Ping.Payload != "" && r.Ping.Payload != pingPayload:
			t.Errorf("%s ping: pong payload %q, want %q", name, r.Ping.Payload, pingPayload)
		}
	}
	text("echo after idling past IdleTimeout (answering server pings)", r.AfterIdle, `{"topic":"echo","data":"after idle"}`)
	if c := r.BClose; c.Error != "" || c.Code != 1000 || !c.WasClean {
		t.Errorf("%s server-initiated close (Session.Close): %+v, want code 1000, clean", name, c)
	}
	if c := r.Close; c.Error != "" || c.Code != 1000 || !c.WasClean {
		t.Errorf("%s client-initiated close: %+v, want code 1000, clean", name, c)
	}
	for n, err := range a.waitClosed(t, name+"-a", name+"-b") {
		if err != nil {
			t.Errorf("OnClose(%s) = %v, want nil", n, err)
		}
	}
	// The 1 MiB message went both ways: compressed, the whole conversation is far
	// smaller on the wire; plain, each direction carries at least the 1 MiB.
	st := a.srv.Stats()
	if compressed := st.BytesIn < bigSize/4 && st.BytesOut < bigSize/4; compressed != a.compress {
		t.Errorf("%s: %d bytes read and %d written by the server with compression %v", name, st.BytesIn, st.BytesOut, a.compress)
	}
}

// parseReport reads the last line of a JS client's stdout as its report.
func parseReport(t *testing.T, out []byte) report {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("client output is not a JSON report (%v):\n%.2000s", err, out)
	}
	return r
}
