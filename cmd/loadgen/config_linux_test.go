//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

func TestParseSources(t *testing.T) {
	cases := []struct {
		in   string
		want string // addresses joined by spaces; "<nil>" for "kernel picks"
		err  bool
	}{
		{"", "", false},
		{"none", "<nil>", false},
		{"127.0.0.2", "127.0.0.2", false},
		{"127.0.0.2-127.0.0.4,10.0.0.1", "127.0.0.2 127.0.0.3 127.0.0.4 10.0.0.1", false},
		{"127.0.0.255-127.0.1.1", "127.0.0.255 127.0.1.0 127.0.1.1", false},
		{"127.0.0.4-127.0.0.2", "", true},
		{"::1", "", true},
		{"localhost", "", true},
	}
	for _, tc := range cases {
		got, err := parseSources(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		var s []string
		for _, ip := range got {
			s = append(s, fmt.Sprint(ip))
		}
		if strings.Join(s, " ") != tc.want {
			t.Errorf("%q: %v, want %s", tc.in, s, tc.want)
		}
	}
}

func TestConfigChecks(t *testing.T) {
	bad := [][]string{
		{"-scenario", "storm"},
		{"-conns", "0"},
		{"-topics", "0"},
		{"-url", "http://x/ws"},
		{"-url", "wss://x/ws"},
		{"-rate", "-1"},
		{"-src", "nonsense"},
		{"extra"},
		{"-flooders", "2"}, // abusers need -scenario abuse
		{"-scenario", "abuse", "-nonreaders", "-1"},
		{"-scenario", "abuse", "-flood-size", "0"},
	}
	for _, args := range bad {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	cfg, err := parseConfig([]string{"-scenario", "echo", "-conns", "5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rate != 2000 || cfg.Topics != 5 || cfg.Timeout <= cfg.Duration {
		t.Errorf("defaults: rate %v topics %d timeout %v", cfg.Rate, cfg.Topics, cfg.Timeout)
	}
	cfg, err = parseConfig([]string{"-scenario", "abuse", "-flooders", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rate != 200 || cfg.Abuse.Flooders != 3 || cfg.Abuse.FloodSize != 64<<10 || cfg.Abuse.NonReaderSize != 1<<20 || cfg.Abuse.SlowReadRate != 4<<10 {
		t.Errorf("abuse defaults: rate %v, %+v", cfg.Rate, cfg.Abuse)
	}
}

func TestPayloadRoundTripAndSize(t *testing.T) {
	for _, size := range []int{0, 100, 1000} {
		frame, _ := publishFrame(nil, nil, "t7", 42, 1234567890123456789, size)
		f, err := ws.ReadFrame(strings.NewReader(string(frame)))
		if err != nil {
			t.Fatal(err)
		}
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		// What the server delivers: {"topic":"t7","data":<data of the publish>}.
		data := strings.TrimSuffix(strings.TrimPrefix(string(f.Payload), `{"topic":"publish","data":{"topic":"t7","data":`), "}}")
		delivered := `{"topic":"t7","data":` + data + `}`
		if size > 0 && len(delivered) != size {
			t.Errorf("size %d: delivered %d bytes: %s", size, len(delivered), delivered)
		}
		echo, seq, ts, ok := parseDelivery([]byte(delivered))
		if !ok || echo || seq != 42 || ts != 1234567890123456789 {
			t.Errorf("size %d: parsed %v %v %d %d", size, ok, echo, seq, ts)
		}
	}
	frame, _ := echoFrame(nil, nil, 0, 99, 0)
	f, _ := ws.ReadFrame(strings.NewReader(string(frame)))
	ws.Cipher(f.Payload, f.Header.Mask, 0)
	answer := `{"topic":"echo","data":` + strings.TrimSuffix(strings.TrimPrefix(string(f.Payload), `{"topic":"echo","data":`), "}") + `}`
	if echo, seq, ts, ok := parseDelivery([]byte(answer)); !ok || !echo || seq != 0 || ts != 99 {
		t.Errorf("echo answer %s parsed %v %v %d %d", answer, ok, echo, seq, ts)
	}
	for _, bad := range []string{`{}`, `{"seq":x,"ts":1}`, `{"seq":1}`, `{"seq":1,"ts":}`} {
		if _, _, _, ok := parseDelivery([]byte(bad)); ok {
			t.Errorf("%s parsed", bad)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{ws.StatusError(503), "handshake_status_503"},
		{&wsfleet.CloseError{Code: 1008}, "server_close_1008"},
		{fmt.Errorf("dial: %w", syscall.EMFILE), "too_many_open_files"},
		{&os.SyscallError{Syscall: "connect", Err: syscall.EADDRNOTAVAIL}, "no_local_port"},
		{syscall.ECONNREFUSED, "connect_refused"},
		{syscall.ECONNRESET, "reset"},
		{context.DeadlineExceeded, "timeout"},
		{wsfleet.ErrCloseTimeout, "close_timeout"},
		{fmt.Errorf("x: %w", wsfleet.ErrWriteBlocked), "write_blocked"},
		{fmt.Errorf("x: %w", io.EOF), "server_eof"},
		{errors.New("something"), "other"},
	}
	for _, tc := range cases {
		if got := errorKind(tc.err); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestSplitParts(t *testing.T) {
	cfg := config{Conns: 1001, ConnectRate: 4000, Rate: 100, Topics: 10, Settle: time.Second}
	specs := splitParts(cfg, "ws://x/ws", nil, 3)
	next := 0
	var rate float64
	for i, s := range specs {
		if s.Index != i || s.From != next || s.To-s.From < 333 || s.To-s.From > 334 {
			t.Errorf("part %d: %+v", i, s)
		}
		next = s.To
		rate += s.Rate
	}
	if next != 1001 || rate < 99.99 || rate > 100.01 {
		t.Errorf("parts cover %d connections and %v/s", next, rate)
	}
}

func TestChildRole(t *testing.T) {
	if childRole([]string{"loadgen", "-internal-role=worker"}) != "worker" || childRole([]string{"loadgen", "-conns", "5"}) != "" || childRole([]string{"loadgen"}) != "" {
		t.Error("childRole")
	}
}

// FuzzParseDelivery: any server message parses without panicking, and what it accepts
// has non-negative numbers that round-trip through appendPayload.
func FuzzParseDelivery(f *testing.F) {
	f.Add([]byte(`{"topic":"t7","data":{"seq":42,"ts":1234567890123456789,"pad":"xx"}}`))
	f.Add([]byte(`{"topic":"echo","data":{"seq":0,"ts":99,"pad":""}}`))
	f.Add([]byte(`{"seq":99999999999999999999999,"ts":1}`))
	f.Add([]byte(`{"seq":1}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		_, seq, ts, ok := parseDelivery(p)
		if !ok {
			return
		}
		if seq < 0 || ts < 0 {
			t.Fatalf("%q: seq %d ts %d", p, seq, ts)
		}
		again := appendPayload(nil, "t", seq, ts, 0)
		if _, s2, t2, ok := parseDelivery(again); !ok || s2 != seq || t2 != ts {
			t.Fatalf("%s does not round-trip: %v %d %d", again, ok, s2, t2)
		}
	})
}
