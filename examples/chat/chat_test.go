package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// noRoster is a roster interval the tests never reach: events come only from requests.
const noRoster = time.Hour

func (tn *testNode) waitInterest(t *testing.T, topics int) {
	t.Helper()
	waitFor(t, "the broker to carry the node's topics", func() bool {
		return tn.srv.Stats().Broker.Interest == topics
	})
}

func TestUserName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, name, key string
		err            error
	}{
		{raw: "ann", name: "ann", key: "ann"},
		{raw: "Ann", name: "Ann", key: "ann"},
		{raw: "  Ann   Lee ", name: "Ann Lee", key: "ann lee"},
		{raw: "ＡＮＮ", name: "ANN", key: "ann"},      // full-width
		{raw: "ﬁona", name: "fiona", key: "fiona"}, // compatibility ligature
		{raw: "bob <b>", name: "bob <b>", key: "bob <b>"},
		{raw: strings.Repeat("é", maxNameRunes), name: strings.Repeat("é", maxNameRunes), key: strings.Repeat("é", maxNameRunes)},
		{raw: "", err: errNameRequired},
		{raw: "   ", err: errNameRequired},
		{raw: "a\tb", err: errNameInvalid},
		{raw: "a\x00b", err: errNameInvalid},
		{raw: "ann\u200b", err: errNameInvalid}, // zero-width space
		{raw: "\xff", err: errNameInvalid},
		{raw: strings.Repeat("x", maxNameRunes+1), err: errNameTooLong},
		{raw: strings.Repeat("x", 10000), err: errNameTooLong},
	} {
		name, key, err := userName(tc.raw)
		if !errors.Is(err, tc.err) || name != tc.name || key != tc.key {
			t.Errorf("userName(%q) = %q, %q, %v; want %q, %q, %v", tc.raw, name, key, err, tc.name, tc.key, tc.err)
		}
	}
}

func TestRoomName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"lobby", "a", "room-2_b", strings.Repeat("r", maxRoomLen)} {
		if got, err := roomName(ok); err != nil || got != ok {
			t.Errorf("roomName(%q) = %q, %v", ok, got, err)
		}
	}
	for _, bad := range []string{"", "Lobby", "a b", "a:b", "a.b", "é", strings.Repeat("r", maxRoomLen+1)} {
		if _, err := roomName(bad); !errors.Is(err, errRoomInvalid) {
			t.Errorf("roomName(%q): err %v, want errRoomInvalid", bad, err)
		}
	}
}

// TestAuth: OnAuth refuses what userName refuses with 401, and /check gives the reason.
func TestAuth(t *testing.T) {
	t.Parallel()
	a := startNodes(t, 1, noRoster)[0]
	for _, tc := range []struct {
		user   string
		status int    // of the WebSocket handshake
		reason string // in /check's body
	}{
		{"ann", http.StatusSwitchingProtocols, ""},
		{"  Ann  Lee ", http.StatusSwitchingProtocols, ""},
		{"", http.StatusUnauthorized, "a name is required"},
		{"  ", http.StatusUnauthorized, "a name is required"},
		{"a\tb", http.StatusUnauthorized, "control or invisible"},
		{strings.Repeat("x", 40), http.StatusUnauthorized, "longer than 32"},
	} {
		if got := a.dialStatus(t, tc.user); got != tc.status {
			t.Errorf("upgrade as %q: status %d, want %d", tc.user, got, tc.status)
		}
		status, body := a.check(t, tc.user)
		if tc.reason == "" && status != http.StatusNoContent {
			t.Errorf("check %q: %d %q, want 204", tc.user, status, body)
		}
		if tc.reason != "" && (status != http.StatusUnauthorized || !strings.Contains(body, tc.reason)) {
			t.Errorf("check %q: %d %q, want 401 saying %q", tc.user, status, body, tc.reason)
		}
	}
}

// TestNameOncePerNode: a name that looks like a connected user's is refused on that
// node; other nodes do not know it (README says so); it is free again after the close.
func TestNameOncePerNode(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, noRoster)
	a, b := nodes[0], nodes[1]
	ann := a.dial(t, "ann")
	ann.join("lobby")
	for _, look := range []string{"ann", "ANN", " Ann ", "ａｎｎ"} {
		if status, body := a.check(t, look); status != http.StatusUnauthorized || !strings.Contains(body, "already connected") {
			t.Errorf("check %q next to ann: %d %q, want 401 already connected", look, status, body)
		}
		if got := a.dialStatus(t, look); got != http.StatusUnauthorized {
			t.Errorf("upgrade as %q next to ann: %d, want 401", look, got)
		}
	}
	if status, body := b.check(t, "ANN"); status != http.StatusNoContent {
		t.Errorf("check ANN on the other node: %d %q, want 204", status, body)
	}
	ann.close()
	waitFor(t, "ann's name to be free", func() bool {
		status, _ := a.check(t, "Ann")
		return status == http.StatusNoContent
	})

	// Two sessions may pass OnAuth with one name before either speaks: the first to
	// speak holds it, the second is told and closed.
	zed1, zed2 := a.dial(t, "zed"), a.dial(t, "ZED")
	zed1.join("lobby")
	zed2.send("join", map[string]string{"room": "lobby"})
	zed2.wantError("already connected")
	select {
	case e, ok := <-zed2.in:
		if ok {
			t.Fatalf("zed2 got %s %s after the refusal, want the connection closed", e.Topic, e.Data)
		}
	case <-time.After(waitTimeout):
		t.Fatal("zed2's connection stays open after the refusal")
	}
}

// TestPresenceAcrossNodes: the flow the page drives, with ann and bob on two nodes.
func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	forEachCluster(t, func(t *testing.T, c cluster) {
		nodes := c.start(t, 2, noRoster)
		a, b := nodes[0], nodes[1]

		ann := a.dial(t, "ann")
		ann.join("lobby")
		a.waitInterest(t, 1)
		bob := b.dial(t, "bob")
		bob.join("lobby")
		b.waitInterest(t, 1)

		if ev := ann.wantEvent("join", "lobby", "bob"); ev.ID != bob.id {
			t.Errorf("bob's join has ID %s, want %s", ev.ID, bob.id)
		}
		// ann's page answers the join; bob learns that ann is in the room.
		ann.send("here", map[string]string{"room": "lobby"})
		if ev := bob.wantEvent("here", "lobby", "ann"); ev.ID != ann.id {
			t.Errorf("ann's here has ID %s, want %s", ev.ID, ann.id)
		}
		ann.wantEvent("here", "lobby", "ann")

		const text = `hi <b>bob</b> & "co"`
		ann.send("chat", map[string]string{"room": "lobby", "text": text})
		for _, c := range []*client{ann, bob} {
			if ev := c.wantEvent("message", "lobby", "ann"); ev.Text != text || ev.ID != ann.id {
				t.Errorf("%s got message %+v, want %q from %s", c.name, ev, text, ann.id)
			}
		}
		bob.send("chat", map[string]string{"room": "lobby", "text": "hello ann"})
		for _, c := range []*client{bob, ann} {
			if ev := c.wantEvent("message", "lobby", "bob"); ev.Text != "hello ann" {
				t.Errorf("%s got message %+v, want bob's", c.name, ev)
			}
		}

		bob.close()
		if ev := ann.wantEvent("leave", "lobby", "bob"); ev.ID != bob.id {
			t.Errorf("bob's leave has ID %s, want %s", ev.ID, bob.id)
		}
	})
}

// TestRooms: events stay in their room; a closed session leaves every room it was in,
// also when it vanishes without a closing handshake.
func TestRooms(t *testing.T) {
	t.Parallel()
	forEachCluster(t, func(t *testing.T, c cluster) {
		nodes := c.start(t, 2, noRoster)
		a, b := nodes[0], nodes[1]

		ann := a.dial(t, "ann")
		ann.join("lobby")
		ann.join("den")
		a.waitInterest(t, 2)
		carol := b.dial(t, "carol")
		carol.join("lobby")
		dave := b.dial(t, "dave")
		dave.join("den")
		b.waitInterest(t, 2)
		ann.wantEvent("join", "lobby", "carol")
		ann.wantEvent("join", "den", "dave")

		ann.send("chat", map[string]string{"room": "den", "text": "den only"})
		ann.send("chat", map[string]string{"room": "lobby", "text": "lobby only"})
		if ev := dave.wantEvent("message", "den", "ann"); ev.Text != "den only" {
			t.Errorf("dave got %+v", ev)
		}
		if ev := carol.wantEvent("message", "lobby", "ann"); ev.Text != "lobby only" {
			t.Errorf("carol got %+v, want only the lobby's message", ev)
		}
		carol.send("chat", map[string]string{"room": "den", "text": "let me in"})
		carol.wantError("not in this room")
		carol.send("here", map[string]string{"room": "den"})
		carol.wantError("not in this room")

		ann.drop()
		carol.wantEvent("leave", "lobby", "ann")
		dave.wantEvent("leave", "den", "ann")
		waitFor(t, "node a to forget its rooms", func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return len(a.rooms) == 0 && len(a.sessions) == 0 && len(a.names) == 0
		})
	})
}

// TestExplicitLeave: after leave, the session hears nothing more of the room and may not
// speak in it; it may join again.
func TestExplicitLeave(t *testing.T) {
	t.Parallel()
	a := startNodes(t, 1, noRoster)[0]
	ann, bob := a.dial(t, "ann"), a.dial(t, "bob")
	ann.join("lobby")
	bob.join("lobby")
	ann.wantEvent("join", "lobby", "bob")

	ann.send("leave", map[string]string{"room": "lobby"})
	bob.wantEvent("leave", "lobby", "ann")
	// Publish returns once the message is on every local subscriber's queue, and bob's
	// requests run in order: when bob sees his here, his chat is queued for everyone it
	// was going to, ahead of anything ann is sent from now on.
	bob.send("chat", map[string]string{"room": "lobby", "text": "ann is gone"})
	bob.send("here", map[string]string{"room": "lobby"})
	bob.wantEvent("message", "lobby", "bob")
	bob.wantEvent("here", "lobby", "bob")
	ann.send("chat", map[string]string{"room": "lobby", "text": "still here?"})
	ann.wantError("not in this room")
	ann.send("leave", map[string]string{"room": "lobby"})
	ann.wantError("not in this room")

	ann.join("lobby")
	bob.wantEvent("join", "lobby", "ann")
}

// TestRosters: every node republishes its own members of each room; after a leave, no
// roster of that node names the member again.
func TestRosters(t *testing.T) {
	t.Parallel()
	forEachCluster(t, func(t *testing.T, c cluster) {
		const refresh = 40 * time.Millisecond
		nodes := c.start(t, 2, refresh)
		a, b := nodes[0], nodes[1]
		ann := a.dial(t, "ann")
		ann.join("lobby")
		a.waitInterest(t, 1)
		bob := b.dial(t, "bob")
		bob.join("lobby")

		// ann hears rosters of both nodes: each names only its own members.
		heard := map[string]bool{}
		var bobLeft bool
		deadline := time.After(waitTimeout)
		for !(heard["ann"] && heard["bob"]) {
			select {
			case e, ok := <-ann.in:
				if !ok {
					t.Fatal("ann's connection closed")
				}
				ev := decodeEvent(t, e)
				if ev.Type != "roster" {
					continue
				}
				if len(ev.Members) != 1 {
					t.Fatalf("roster %+v names members of two nodes", ev)
				}
				heard[ev.Members[0].User] = true
			case <-deadline:
				t.Fatalf("rosters heard by ann within %v: %v", waitTimeout, heard)
			}
		}

		bob.send("leave", map[string]string{"room": "lobby"})
		rostersAfter := 0
		for rostersAfter < 5 { // five of node a's, with none of node b's naming bob
			select {
			case e, ok := <-ann.in:
				if !ok {
					t.Fatal("ann's connection closed")
				}
				ev := decodeEvent(t, e)
				switch {
				case ev.Type == "leave" && ev.User == "bob":
					bobLeft = true
				case ev.Type == "roster" && slices.ContainsFunc(ev.Members, func(p person) bool { return p.User == "bob" }):
					if bobLeft {
						t.Fatalf("roster %+v names bob after his leave", ev)
					}
				case ev.Type == "roster" && bobLeft:
					rostersAfter++
				}
			case <-deadline:
				t.Fatalf("after bob's leave (seen: %v), ann heard %d rosters within %v", bobLeft, rostersAfter, waitTimeout)
			}
		}
		b.mu.Lock()
		rooms := len(b.rooms)
		b.mu.Unlock()
		if rooms != 0 {
			t.Errorf("node b still has %d rooms with no one in them", rooms)
		}
	})
}

func decodeEvent(t *testing.T, e envelope) event {
	t.Helper()
	var ev event
	if err := json.Unmarshal(e.Data, &ev); err != nil || e.Topic != roomTopic(ev.Room) {
		t.Fatalf("bad room event %s %s (%v)", e.Topic, e.Data, err)
	}
	return ev
}

// TestShutdownAnnouncesLeaves: a node that shuts down closes its sessions with 1001 and
// the other nodes hear their leaves.
func TestShutdownAnnouncesLeaves(t *testing.T) {
	t.Parallel()
	forEachCluster(t, func(t *testing.T, c cluster) {
		nodes := c.start(t, 2, noRoster)
		a, b := nodes[0], nodes[1]
		ann := a.dial(t, "ann")
		ann.join("lobby")
		a.waitInterest(t, 1)
		bob := b.dial(t, "bob")
		bob.join("lobby")
		ann.wantEvent("join", "lobby", "bob")

		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := b.shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		ann.wantEvent("leave", "lobby", "bob")
		select {
		case e, ok := <-bob.in:
			if ok {
				t.Fatalf("bob got %s %s, want the connection closed", e.Topic, e.Data)
			}
		case <-time.After(waitTimeout):
			t.Fatal("bob's connection is still open after the shutdown")
		}
	})
}

// TestBadRequests: every refused request gets an error and leaves the session open.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	a := startNodes(t, 1, noRoster)[0]
	ann := a.dial(t, "ann")
	for _, tc := range []struct {
		topic string
		data  any
		want  string
	}{
		{"join", "lobby", "data must be a JSON object"},
		{"join", map[string]string{"room": "Lobby"}, "a room name is"},
		{"join", map[string]string{}, "a room name is"},
		{"chat", map[string]string{"room": "lobby", "text": "hi"}, "not in this room"},
		{"dance", map[string]string{"room": "lobby"}, `unknown topic "dance"`},
	} {
		ann.send(tc.topic, tc.data)
		ann.wantError(tc.want)
	}
	ann.join("lobby")
	ann.send("chat", map[string]string{"room": "lobby", "text": ""})
	ann.wantError("a message is 1 to")
	ann.send("chat", map[string]string{"room": "lobby", "text": strings.Repeat("é", maxTextRunes+1)})
	ann.wantError("a message is 1 to")
	ann.send("chat", map[string]string{"room": "lobby", "text": strings.Repeat("é", maxTextRunes)})
	ann.wantEvent("message", "lobby", "ann")
	for i := 1; i < maxRooms; i++ {
		ann.join("room" + string(rune('a'+i)))
	}
	ann.send("join", map[string]string{"room": "onetoomany"})
	ann.wantError("rooms already")
	ann.join("lobby") // joining a room again is fine
}

// TestPage: the page and its assets are served with a content security policy.
func TestPage(t *testing.T) {
	t.Parallel()
	a := startNodes(t, 1, noRoster)[0]
	httpClient := &http.Client{Timeout: waitTimeout}
	for _, tc := range []struct {
		path, contentType, contains string
		status                      int
	}{
		{"/", "text/html", `<script src="chat.js"`, 200},
		{"/chat.js", "javascript", "textContent", 200},
		{"/chat.css", "text/css", "#members", 200},
		{"/nope", "", "", 404},
	} {
		resp, err := httpClient.Get(a.base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("Content-Type"), tc.contentType) || !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: %d %s, want %d %s containing %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.contentType, tc.contains)
		}
		if tc.status == 200 && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: no content security policy", tc.path)
		}
	}
}
