package pubsub

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	stats "github.com/livepoll/livepoll/internal/srvstats"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want Command
		ok   bool
	}{
		{`{"topic":"subscribe","data":{"topic":"t"}}`, Command{Op: OpSubscribe, Topic: "t"}, true},
		{`{"topic":"unsubscribe","data":{"topic":"t"}}`, Command{Op: OpUnsubscribe, Topic: "t"}, true},
		{`{"topic":"publish","data":{"topic":"t","data":{"a":1}}}`, Command{Op: OpPublish, Topic: "t", Data: json.RawMessage(`{"a":1}`)}, true},
		{`{"topic":"echo","data":[1, "x"]}`, Command{Op: OpEcho, Data: json.RawMessage(`[1, "x"]`)}, true},
		{`{"topic":"echo"}`, Command{Op: OpEcho}, true},
		{`{"topic":"subscribe","data":{"topic":""}}`, Command{}, true},
		{`{"topic":"publish","data":"t"}`, Command{}, true},
		{`{"topic":"other","data":1}`, Command{}, true},
		{`not json`, Command{}, false},
		{`[1]`, Command{}, false},
	} {
		msg := []byte(tc.msg)
		got, ok := Parse(msg)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%s) = %+v, %v; want %+v, %v", tc.msg, got, ok, tc.want, tc.ok)
		}
		clear(msg) // a library reuses its buffer: the command must not change
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%s): the command refers to the message's buffer", tc.msg)
		}
	}
}

// Envelope is json.Marshal's: data compacted, HTML characters escaped, nil
// data null.
func TestEnvelope(t *testing.T) {
	for _, tc := range []struct {
		data json.RawMessage
		want string
	}{
		{json.RawMessage(`{"a": [1, 2]}`), `{"topic":"t","data":{"a":[1,2]}}`},
		{json.RawMessage(`"<&>"`), `{"topic":"t","data":"\u003c\u0026\u003e"}`},
		{nil, `{"topic":"t","data":null}`},
	} {
		got, err := Envelope("t", tc.data)
		if err != nil || string(got) != tc.want {
			t.Errorf("Envelope(%s) = %s, %v; want %s", tc.data, got, err, tc.want)
		}
	}
}

type conn struct {
	id int
	Subscriptions
}

func TestRegistry(t *testing.T) {
	var r Registry[*conn]
	a, b := &conn{id: 1}, &conn{id: 2}
	subs := func(topic string) []int {
		var ids []int
		for c := range r.Subscribers(topic) {
			ids = append(ids, c.id)
		}
		slices.Sort(ids)
		return ids
	}
	r.Subscribe(a, "x")
	r.Subscribe(a, "y")
	r.Subscribe(b, "x")
	if got := subs("x"); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("x: %v", got)
	}
	r.Unsubscribe(a, "x")
	if got := r.Snapshot("x"); len(got) != 1 || got[0] != b {
		t.Fatalf("x after unsubscribe: %v", got)
	}
	r.UnsubscribeAll(a)
	if got := subs("y"); len(got) != 0 || len(r.topics) != 1 || a.topics != nil {
		t.Fatalf("after UnsubscribeAll(a): y %v, %d topics, a's %v", got, len(r.topics), a.topics)
	}
	r.UnsubscribeAll(b)
	if len(r.topics) != 0 || len(r.Snapshot("x")) != 0 {
		t.Fatalf("after UnsubscribeAll(b): %d topics", len(r.topics))
	}
}

type sender struct{ got []string }

func (s *sender) Publish(topic string, data []byte) {
	s.got = append(s.got, "publish "+topic+" "+string(data))
}
func (s *sender) Echo(c *conn, data []byte) { s.got = append(s.got, "echo "+string(data)) }

func TestHandle(t *testing.T) {
	var r Registry[*conn]
	var s sender
	c := &conn{id: 1}
	handle := func(msg string) {
		cmd, _ := Parse([]byte(msg))
		r.Handle(c, cmd, &s)
	}
	handle(`{"topic":"subscribe","data":{"topic":"t"}}`)
	if len(r.Snapshot("t")) != 1 {
		t.Fatal("not subscribed")
	}
	handle(`{"topic":"publish","data":{"topic":"t","data":1}}`)
	handle(`{"topic":"echo","data":2}`)
	handle(`{"topic":"unsubscribe","data":{"topic":"t"}}`)
	if len(r.Snapshot("t")) != 0 {
		t.Error("still subscribed after unsubscribe")
	}
	if want := []string{"publish t 1", "echo 2"}; !slices.Equal(s.got, want) {
		t.Errorf("sent %q, want %q", s.got, want)
	}
}

func TestSession(t *testing.T) {
	var c stats.Counters
	var s1, s2 Session
	s1.Handled(&c)
	s1.Handled(&c)
	if n := c.Sessions.Load(); n != 1 {
		t.Fatalf("after two messages: %d sessions", n)
	}
	s2.Closed(&c) // closed before its first message: never counted
	s2.Handled(&c)
	s1.Closed(&c)
	if n := c.Sessions.Load(); n != 0 {
		t.Fatalf("after closes: %d sessions", n)
	}
}
