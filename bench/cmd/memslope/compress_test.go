package main

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/internal/wsfleet"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The echo request is valid JSON of about 2 KiB, differs per connection, and compresses
// as JSON does: well above the servers' thresholds, and far from a run of one byte.
func TestEchoMessage(t *testing.T) {
	a, b := echoMessage(1), echoMessage(2)
	if bytes.Equal(a, b) {
		t.Error("two connections send the same echo")
	}
	var v struct {
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(a, &v); err != nil || v.Topic != "echo" {
		t.Fatalf("not an echo request: %v (%s)", err, a)
	}
	if len(a) < 2000 || len(a) > 2200 {
		t.Errorf("echo request of %d bytes, want about 2 KiB", len(a))
	}
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestSpeed)
	w.Write(a)
	w.Close()
	if ratio := float64(z.Len()) / float64(len(a)); ratio < 0.1 || ratio > 0.6 {
		t.Errorf("deflate ratio %.2f, want JSON-like (0.1-0.6)", ratio)
	}
}

// wait needs every reply, and every reply compressed.
func TestEchoesWait(t *testing.T) {
	var e echoes
	frame := func(rsv1 bool) { e.handler(nil, wsfleet.Frame{Fin: true, RSV1: rsv1, Op: ws.OpText}) }
	frame(true)
	frame(true)
	e.handler(nil, wsfleet.Frame{Fin: true, Op: ws.OpContinuation})
	if err := e.wait(3, 20*time.Millisecond); err == nil {
		t.Error("2 replies of 3: no error")
	}
	if err := e.wait(2, time.Second); err != nil {
		t.Errorf("2 compressed replies of 2: %v", err)
	}
	frame(false)
	if err := e.wait(3, time.Second); err == nil {
		t.Error("a plain reply: no error")
	}
}
