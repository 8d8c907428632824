//go:build linux

package main

import (
	"bytes"
	"math"
	"strconv"

	"github.com/gobwas/ws"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

// The app protocol (bench/servers/livepoll, and loadgen's own server): client messages
// are envelopes {"topic":T,"data":D}; "subscribe" {"topic":X} subscribes, "publish"
// {"topic":X,"data":D} sends D to X's subscribers as {"topic":X,"data":D}, "echo" sends
// D back as {"topic":"echo","data":D}.
//
// loadgen's payloads D are {"seq":N,"ts":T,"pad":"xx…"}: seq counts per topic (publish) or
// per connection (echo) from 1, ts is the time the message was due to be sent in Unix
// nanoseconds, pad fills the message to -size bytes. An echo with seq 0 is the barrier
// behind a subscribe: its answer shows the subscribe took effect, since the server
// handles one connection's messages in order.

// topicName is the name of topic t.
func topicName(t int) string { return "t" + strconv.Itoa(t) }

func subscribeMsg(topic string) []byte {
	return []byte(`{"topic":"subscribe","data":{"topic":"` + topic + `"}}`)
}

// payloadSize is the size of {"seq":N,"ts":T,"pad":""} with a 19-digit T.
func payloadSize(seq int64) int {
	return len(`{"seq":,"ts":1234567890123456789,"pad":""}`) + len(strconv.AppendInt(nil, seq, 10))
}

// appendPayload appends {"seq":seq,"ts":ts,"pad":"x…"} padded so that the envelope the
// receiver gets, {"topic":topic,"data":…}, is about size bytes.
func appendPayload(dst []byte, topic string, seq, ts int64, size int) []byte {
	envelope := len(`{"topic":"","data":}`) + len(topic)
	pad := max(0, size-envelope-payloadSize(seq))
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"pad":"`...)
	for range pad {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// echoFrame appends a masked frame asking for an echo of seq and ts.
func echoFrame(dst, scratch []byte, seq, ts int64, size int) (frame, scratchOut []byte) {
	scratch = append(scratch[:0], `{"topic":"echo","data":`...)
	scratch = appendPayload(scratch, "echo", seq, ts, size)
	scratch = append(scratch, '}')
	return wsfleet.AppendClientFrame(dst, ws.OpText, scratch), scratch
}

// publishFrame appends a masked frame publishing seq and ts to topic.
func publishFrame(dst, scratch []byte, topic string, seq, ts int64, size int) (frame, scratchOut []byte) {
	scratch = append(scratch[:0], `{"topic":"publish","data":{"topic":"`...)
	scratch = append(scratch, topic...)
	scratch = append(scratch, `","data":`...)
	scratch = appendPayload(scratch, topic, seq, ts, size)
	scratch = append(scratch, `}}`...)
	return wsfleet.AppendClientFrame(dst, ws.OpText, scratch), scratch
}

var (
	echoPrefix    = []byte(`{"topic":"echo",`)
	seqKey, tsKey = []byte(`"seq":`), []byte(`"ts":`)
)

// parseDelivery reads a server message: whether it is an echo answer, and its seq and ts.
func parseDelivery(p []byte) (echo bool, seq, ts int64, ok bool) {
	echo = bytes.HasPrefix(p, echoPrefix)
	i := bytes.Index(p, seqKey)
	if i < 0 {
		return echo, 0, 0, false
	}
	p = p[i+len(seqKey):]
	seq, k := atoi(p)
	if k == 0 {
		return echo, 0, 0, false
	}
	p = p[k:]
	j := bytes.Index(p, tsKey)
	if j < 0 {
		return echo, 0, 0, false
	}
	ts, k = atoi(p[j+len(tsKey):])
	return echo, seq, ts, k > 0
}

// atoi reads the decimal number at the start of p; n is 0 when there is none or it does
// not fit an int64.
func atoi(p []byte) (v int64, n int) {
	for n < len(p) && p[n] >= '0' && p[n] <= '9' {
		d := int64(p[n] - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, 0
		}
		v = v*10 + d
		n++
	}
	return v, n
}
