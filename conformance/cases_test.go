package conformance

import (
	"bytes"
	"fmt"
	"time"
)

func one(b ...[]byte) func() []chunk {
	return func() []chunk { return []chunk{{data: bytes.Join(b, nil)}} }
}

// framewise sends each frame separately with a pause after it.
func framewise(b ...[]byte) func() []chunk {
	return func() []chunk {
		var cs []chunk
		for _, f := range b {
			cs = append(cs, chunk{data: f, pause: frameWise})
		}
		return cs
	}
}

// octetwise sends the frames one octet at a time.
func octetwise(b ...[]byte) func() []chunk {
	return func() []chunk { return []chunk{{data: bytes.Join(b, nil), chop: 1, pause: octetWise}} }
}

func rep(s string, n int) []byte { return bytes.Repeat([]byte(s), n) }

func fail(codes ...int) want { return want{close: codes} }

func unhex(s string) []byte {
	var b []byte
	for i := 0; i+1 < len(s); i += 2 {
		var v byte
		fmt.Sscanf(s[i:i+2], "%02x", &v)
		b = append(b, v)
	}
	return b
}

func allCases() []tcase {
	var cs []tcase
	add := func(id, name string, send func() []chunk, w want, v verdict) {
		cs = append(cs, tcase{id: id, name: id + " " + name, send: send, want: w, verdict: v})
	}
	echo := func(evs ...event) want { return want{events: evs} }

	// 1 Framing: text and binary messages of the payload lengths around each length encoding.
	lens := []int{0, 125, 126, 127, 128, 65535, 65536}
	for i, n := range lens {
		p := rep("*", n)
		add(fmt.Sprintf("1.1.%d", i+1), fmt.Sprintf("text message of %d bytes", n), one(text(string(p))), echo(txt(string(p))), pass)
	}
	add("1.1.8", "text message of 65536 bytes written in chops of 997 octets", func() []chunk {
		return []chunk{{data: text(string(rep("*", 65536))), chop: 997}}
	}, echo(txt(string(rep("*", 65536)))), pass)
	for i, n := range lens {
		p := rep("\xfe", n)
		add(fmt.Sprintf("1.2.%d", i+1), fmt.Sprintf("binary message of %d bytes", n), one(binaryMsg(p)), echo(msg(opBinary, p)), pass)
	}
	add("1.2.8", "binary message of 65536 bytes written in chops of 997 octets", func() []chunk {
		return []chunk{{data: binaryMsg(rep("\xfe", 65536)), chop: 997}}
	}, echo(msg(opBinary, rep("\xfe", 65536))), pass)

	// 2 Pings and pongs.
	add("2.1", "ping without payload", one(ping("")), echo(pg("")), pass)
	add("2.2", "ping with small text payload", one(ping("Hello, world!")), echo(pg("Hello, world!")), pass)
	add("2.3", "ping with small binary payload", one(ping("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")), echo(pg("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")), pass)
	add("2.4", "ping with 125-byte binary payload", one(ping(string(rep("\xfe", 125)))), echo(pg(string(rep("\xfe", 125)))), pass)
	add("2.5", "ping with 126-byte payload (too long for a control frame)", one(ping(string(rep("\xfe", 126)))), fail(1002), pass)
	add("2.6", "ping with 125-byte payload written one octet at a time", octetwise(ping(string(rep("\xfe", 125)))), echo(pg(string(rep("\xfe", 125)))), pass)
	add("2.7", "unsolicited pong without payload", one(pong("")), echo(), pass)
	add("2.8", "unsolicited pong with payload", one(pong("unsolicited pong payload")), echo(), pass)
	add("2.9", "unsolicited pong, then ping", one(pong("unsolicited pong payload"), ping("ping payload")), echo(pg("ping payload")), pass)
	var pings [][]byte
	var pongs []event
	for i := range 10 {
		pings = append(pings, ping(fmt.Sprintf("payload-%d", i)))
		pongs = append(pongs, pg(fmt.Sprintf("payload-%d", i)))
	}
	add("2.10", "10 pings in one write", one(pings...), want{events: pongs, lastPongOnly: true}, pass)
	add("2.11", "10 pings written one octet at a time", octetwise(pings...), want{events: pongs, lastPongOnly: true}, pass)

	// 3 Reserved bits.
	add("3.1", "text with RSV=1", one(frm(true, 1, opText, []byte("Hello, world!"))), fail(1002), pass)
	add("3.2", "text, text with RSV=2, ping", one(text("Hello, world!"), frm(true, 2, opText, []byte("Hello, world!")), ping("")), want{events: []event{txt("Hello, world!")}, close: []int{1002}}, pass)
	add("3.3", "text, text with RSV=3, ping, frame-wise", framewise(text("Hello, world!"), frm(true, 3, opText, []byte("Hello, world!")), ping("")), want{events: []event{txt("Hello, world!")}, close: []int{1002}}, pass)
	add("3.4", "text, text with RSV=4, ping, octet-wise", octetwise(text("Hello, world!"), frm(true, 4, opText, []byte("Hello, world!")), ping("")), want{events: []event{txt("Hello, world!")}, close: []int{1002}}, pass)
	add("3.5", "binary with RSV=5", one(frm(true, 5, opBinary, []byte{0, 1, 2, 3})), fail(1002), pass)
	add("3.6", "ping with RSV=6", one(frm(true, 6, opPing, []byte("Hello, world!"))), fail(1002), pass)
	add("3.7", "close with RSV=7", one(frm(true, 7, opClose, nil)), fail(1002), pass)

	// 4 Opcodes.
	for i, op := range []byte{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		id := fmt.Sprintf("4.%d.%d", i/5+1, i%5+1)
		kind := "non-control"
		if op > 7 {
			kind = "control"
		}
		switch i % 5 {
		case 0:
			add(id, fmt.Sprintf("reserved %s opcode %d", kind, op), one(frm(true, 0, op, nil)), fail(1002), pass)
		case 1:
			add(id, fmt.Sprintf("reserved %s opcode %d with payload", kind, op), one(frm(true, 0, op, []byte("reserved opcode payload"))), fail(1002), pass)
		default:
			add(id, fmt.Sprintf("text, reserved %s opcode %d with payload, ping", kind, op), one(text("Hello, world!"), frm(true, 0, op, []byte("reserved opcode payload")), ping("")),
				want{events: []event{txt("Hello, world!")}, close: []int{1002}}, pass)
		}
	}

	// 5 Fragmentation.
	f1, f2 := frm(false, 0, opText, []byte("fragment1")), frm(true, 0, opCont, []byte("fragment2"))
	add("5.1", "ping fragmented into 2 frames", one(frm(false, 0, opPing, []byte("fragment1")), frm(true, 0, opCont, []byte("fragment2"))), fail(1002), pass)
	add("5.2", "pong fragmented into 2 frames", one(frm(false, 0, opPong, []byte("fragment1")), frm(true, 0, opCont, []byte("fragment2"))), fail(1002), pass)
	add("5.3", "text fragmented into 2 frames", one(f1, f2), echo(txt("fragment1fragment2")), pass)
	add("5.4", "text fragmented into 2 frames, octet-wise", octetwise(f1, f2), echo(txt("fragment1fragment2")), pass)
	add("5.5", "text fragmented into 2 frames, frame-wise", framewise(f1, f2), echo(txt("fragment1fragment2")), pass)
	pp := ping("ping payload")
	add("5.6", "text fragmented with ping between", one(f1, pp, f2), echo(pg("ping payload"), txt("fragment1fragment2")), pass)
	add("5.7", "text fragmented with ping between, octet-wise", octetwise(f1, pp, f2), echo(pg("ping payload"), txt("fragment1fragment2")), pass)
	add("5.8", "text fragmented with ping between, frame-wise", framewise(f1, pp, f2), echo(pg("ping payload"), txt("fragment1fragment2")), pass)
	orphan := func(fin bool) []byte { return frm(fin, 0, opCont, []byte("non-continuation payload")) }
	hello := text("Hello, world!")
	for i, fin := range []bool{true, false} {
		base := 9 + 3*i
		what := fmt.Sprintf("continuation (FIN=%v) with nothing to continue, then text", fin)
		add(fmt.Sprintf("5.%d", base), what, one(orphan(fin), hello), fail(1002), pass)
		add(fmt.Sprintf("5.%d", base+1), what+", octet-wise", octetwise(orphan(fin), hello), fail(1002), pass)
		add(fmt.Sprintf("5.%d", base+2), what+", frame-wise", framewise(orphan(fin), hello), fail(1002), pass)
	}
	add("5.15", "text in 2 fragments, then continuation (FIN=false) with nothing to continue, then text",
		one(f1, f2, frm(false, 0, opCont, []byte("fragment3")), frm(true, 0, opText, []byte("fragment4"))),
		want{events: []event{txt("fragment1fragment2")}, close: []int{1002}}, pass)
	seq := func(fin bool) []byte {
		return bytes.Join([][]byte{frm(fin, 0, opCont, []byte("fragment1")), frm(false, 0, opText, []byte("fragment2")), frm(true, 0, opCont, []byte("fragment3"))}, nil)
	}
	add("5.16", "twice: continuation (FIN=false) with nothing to continue, text in 2 fragments", one(seq(false), seq(false)), fail(1002), pass)
	add("5.17", "twice: continuation (FIN=true) with nothing to continue, text in 2 fragments", one(seq(true), seq(true)), fail(1002), pass)
	add("5.18", "text in 2 fragments, both with opcode text", one(f1, frm(true, 0, opText, []byte("fragment2"))), fail(1002), pass)
	frag := func(i int, fin bool) []byte {
		op := byte(opCont)
		if i == 1 {
			op = opText
		}
		return frm(fin, 0, op, []byte(fmt.Sprintf("fragment%d", i)))
	}
	five := echo(pg("pongme 1!"), pg("pongme 2!"), txt("fragment1fragment2fragment3fragment4fragment5"))
	add("5.19", "text in 5 fragments with 2 pings between, pauses after each ping", func() []chunk {
		return []chunk{
			{data: bytes.Join([][]byte{frag(1, false), frag(2, false), ping("pongme 1!")}, nil), pause: frameWise},
			{data: bytes.Join([][]byte{frag(3, false), frag(4, false), ping("pongme 2!")}, nil), pause: frameWise},
			{data: frag(5, true)},
		}
	}, five, pass)
	add("5.20", "text in 5 fragments with 2 pings between, frame-wise", framewise(frag(1, false), frag(2, false), ping("pongme 1!"), frag(3, false), frag(4, false), ping("pongme 2!"), frag(5, true)), five, pass)

	cs = append(cs, utf8Cases()...)
	cs = append(cs, closeCases()...)
	cs = append(cs, limitCases()...)
	cs = append(cs, compressionCases()...)
	return cs
}

func utf8Cases() []tcase {
	var cs []tcase
	add := func(id, name string, send func() []chunk, w want, v verdict) {
		cs = append(cs, tcase{id: id, name: id + " " + name, send: send, want: w, verdict: v})
	}
	echo := func(evs ...event) want { return want{events: evs} }
	add("6.1.1", "empty text frame", one(text("")), echo(txt("")), pass)
	add("6.1.2", "text of 3 empty fragments", one(frm(false, 0, opText, nil), frm(false, 0, opCont, nil), frm(true, 0, opCont, nil)), echo(txt("")), pass)
	add("6.1.3", "text of 3 fragments, first and last empty", one(frm(false, 0, opText, nil), frm(false, 0, opCont, []byte("middle frame payload")), frm(true, 0, opCont, nil)), echo(txt("middle frame payload")), pass)
	hello := "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!"
	add("6.2.1", "valid UTF-8 in one frame", one(text(hello)), echo(txt(hello)), pass)
	add("6.2.2", "valid UTF-8 in 2 fragments split on a code point boundary", one(frm(false, 0, opText, []byte(hello[:12])), frm(true, 0, opCont, []byte(hello[12:]))), echo(txt(hello)), pass)
	add("6.2.3", "valid UTF-8 in 1-octet fragments", one(fragments(opText, []byte(hello), 1)), echo(txt(hello)), pass)
	kosme := "\u03ba\u1f79\u03c3\u03bc\u03b5"
	add("6.2.4", "valid UTF-8 in 1-octet fragments, split inside code points", one(fragments(opText, []byte(kosme+kosme+kosme), 1)), echo(txt(kosme+kosme+kosme)), pass)
	bad := unhex("cebae1bdb9cf83cebcceb5eda080656469746564")
	add("6.3.1", "invalid UTF-8 (a surrogate) in one frame", one(frm(true, 0, opText, bad)), fail(1007), pass)
	add("6.3.2", "invalid UTF-8 (a surrogate) in 1-octet fragments", one(fragments(opText, bad, 1)), fail(1007), pass)

	// 6.4: fail fast. The connection must fail on the invalid octets, before the rest is sent.
	p1, p2, p3 := unhex("cebae1bdb9cf83cebcceb5"), unhex("f4908080"), unhex("2d656469746564")
	q1, q2, q3 := unhex("cebae1bdb9cf83cebcceb5f4"), unhex("90"), unhex("80802d656469746564")
	threeFrames := func(a, b, c []byte) func() []chunk {
		return func() []chunk {
			return []chunk{
				{data: frm(false, 0, opText, a), pause: frameWise},
				{data: frm(false, 0, opCont, b), failFast: true},
				{data: frm(true, 0, opCont, c)},
			}
		}
	}
	oneFrameChops := func(a, b, c []byte) func() []chunk {
		return func() []chunk {
			f := frm(true, 0, opText, bytes.Join([][]byte{a, b, c}, nil))
			h := len(f) - len(a) - len(b) - len(c)
			return []chunk{
				{data: f[:h+len(a)], pause: frameWise},
				{data: f[h+len(a) : h+len(a)+len(b)], failFast: true},
				{data: f[h+len(a)+len(b):]},
			}
		}
	}
	add("6.4.1", "invalid code point (f4 90 80 80) in the 2nd of 3 fragments, fail-fast", threeFrames(p1, p2, p3), fail(1007), pass)
	add("6.4.2", "invalid octet sequence split across fragments 1 and 2 (f4 | 90), fail-fast", threeFrames(q1, q2, q3), fail(1007), pass)
	add("6.4.3", "invalid code point in the 2nd of 3 chops of one frame, fail-fast", oneFrameChops(p1, p2, p3), fail(1007), pass)
	add("6.4.4", "invalid octet sequence split across chops of one frame (f4 | 90), fail-fast", oneFrameChops(q1, q2, q3), fail(1007), pass)

	// 6.5-6.23: the UTF-8 decoder test vectors (Markus Kuhn's UTF-8-test.txt), each sent as
	// one text frame: valid ones are echoed, invalid ones fail the connection with 1007.
	for i, g := range utf8Vectors() {
		for j, v := range g.vectors {
			id := fmt.Sprintf("6.%d.%d", i+5, j+1)
			p := unhex(v.hex)
			if v.valid {
				add(id, fmt.Sprintf("%s: valid %s", g.name, v.hex), one(frm(true, 0, opText, p)), echo(msg(opText, p)), pass)
			} else {
				add(id, fmt.Sprintf("%s: invalid %s", g.name, short(v.hex)), one(frm(true, 0, opText, p)), fail(1007), pass)
			}
		}
	}
	return cs
}

func short(h string) string {
	if len(h) > 24 {
		return fmt.Sprintf("%s... (%d bytes)", h[:24], len(h)/2)
	}
	return h
}

type vector struct {
	valid bool
	hex   string
}

type group struct {
	name    string
	vectors []vector
}

func utf8Vectors() []group {
	v := func(valid bool, hs ...string) []vector {
		var out []vector
		for _, h := range hs {
			out = append(out, vector{valid, h})
		}
		return out
	}
	kosme := "cebae1bdb9cf83cebcceb5"
	var prefixes []vector
	for n := 1; n <= len(kosme)/2; n++ {
		// valid exactly when the prefix ends on a code point boundary
		prefixes = append(prefixes, vector{n == 2 || n == 5 || n == 7 || n == 9 || n == 11, kosme[:2*n]})
	}
	var cont string
	for b := 0x80; b < 0xbf; b++ {
		cont += fmt.Sprintf("%02x", b)
	}
	lonely := func(lo, hi int) string {
		var s string
		for b := lo; b < hi; b++ {
			s += fmt.Sprintf("%02x20", b)
		}
		return s
	}
	missing := []string{"c0", "e080", "f08080", "f8808080", "fc80808080", "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf"}
	var concat string
	for _, m := range missing {
		concat += m
	}
	var nonchars = []string{"efbfbe", "efbfbf"}
	for _, z1 := range []string{"f0", "f1", "f2", "f3", "f4"} {
		for _, z2 := range []string{"8f", "9f", "af", "bf"} {
			if z1 == "f4" && z2 != "8f" || z1 == "f0" && z2 == "8f" {
				continue
			}
			nonchars = append(nonchars, z1+z2+"bfbe", z1+z2+"bfbf")
		}
	}
	return []group{
		{"some valid UTF-8", v(true, "68656c6c6f24776f726c64", "68656c6c6fc2a2776f726c64", "68656c6c6fe282ac776f726c64", "68656c6c6ff0a4ada2776f726c64", kosme)},
		{"prefix of valid UTF-8", prefixes},
		{"first possible sequence of a length", v(true, "00", "c280", "e0a080", "f0908080")},
		{"first possible sequence of length 5/6", v(false, "f888808080", "fc8480808080")},
		{"last possible sequence of a length", v(true, "7f", "dfbf", "efbfbf", "f48fbfbf")},
		{"last possible sequence of length 4/5/6", v(false, "f7bfbfbf", "fbbfbfbfbf", "fdbfbfbfbfbf")},
		{"other boundary", append(v(true, "ed9fbf", "ee8080", "efbfbd", "f48fbfbf"), v(false, "f4908080")...)},
		{"unexpected continuation bytes", v(false, "80", "bf", "80bf", "80bf80", "80bf80bf", "80bf80bf80", "80bf80bf80bf", cont)},
		{"lonely start bytes", v(false, lonely(0xc0, 0xdf), lonely(0xe0, 0xef), lonely(0xf0, 0xf7), lonely(0xf8, 0xfb), lonely(0xfc, 0xfd))},
		{"last continuation byte missing", v(false, missing...)},
		{"concatenated incomplete sequences", v(false, concat)},
		{"impossible bytes", v(false, "fe", "ff", "fefeffff")},
		{"overlong ASCII", v(false, "c0af", "e080af", "f08080af", "f8808080af", "fc80808080af")},
		{"maximum overlong", v(false, "c1bf", "e09fbf", "f08fbfbf", "f887bfbfbf", "fc83bfbfbfbf")},
		{"overlong NUL", v(false, "c080", "e08080", "f0808080", "f880808080", "fc8080808080")},
		{"single UTF-16 surrogate", v(false, "eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80", "edbfbf")},
		{"paired UTF-16 surrogates", v(false, "eda080edb080", "eda080edbfbf", "edadbfedb080", "edadbfedbfbf", "edae80edb080", "edae80edbfbf", "edafbfedb080", "edafbfedbfbf")},
		{"noncharacter", v(true, nonchars...)},
		{"Unicode special", v(true, "efbfb9", "efbfba", "efbfbb", "efbfbc", "efbfbd", "efbfbe", "efbfbf")},
	}
}

func closeCases() []tcase {
	var cs []tcase
	add := func(id, name string, send func() []chunk, w want, v verdict) {
		cs = append(cs, tcase{id: id, name: id + " " + name, send: send, want: w, verdict: v})
	}
	add("7.1.1", "text, then close 1000", one(text("Hello World!"), closeWith(1000, "")), want{events: []event{txt("Hello World!")}, close: []int{1000}}, pass)
	add("7.1.2", "two closes", one(closeEmpty(), closeEmpty()), fail(0, 1000), pass)
	add("7.1.3", "close, then ping: no pong", one(closeEmpty(), ping("Hello World!")), fail(0, 1000), pass)
	add("7.1.4", "close, then text: no echo", one(closeEmpty(), text("Hello World!")), fail(0, 1000), pass)
	add("7.1.5", "text fragment, close, last fragment: no echo", one(frm(false, 0, opText, []byte("fragment1")), closeEmpty(), frm(true, 0, opCont, []byte("fragment2"))), fail(0, 1000), pass)
	big := rep("BAsd7&jh23", 26214)
	add("7.1.6", "256 KiB text, close, ping", one(text(string(big)), closeEmpty(), ping("Hello World!")), want{events: []event{msg(opText, big)}, close: []int{0, 1000}}, pass)
	add("7.3.1", "close with empty payload", one(closeEmpty()), fail(0, 1000), pass)
	add("7.3.2", "close with 1-byte payload", one(frm(true, 0, opClose, []byte("a"))), fail(1002), pass)
	add("7.3.3", "close 1000 without reason", one(closeWith(1000, "")), fail(1000), pass)
	add("7.3.4", "close 1000 with short reason", one(closeWith(1000, "Hello World!")), fail(1000), pass)
	add("7.3.5", "close 1000 with 123-byte reason", one(closeWith(1000, string(rep("*", 123)))), fail(1000), pass)
	add("7.3.6", "close 1000 with 124-byte reason (payload 126, too long)", one(closeWith(1000, string(rep("*", 124)))), fail(1002), pass)
	add("7.5.1", "close 1000 with invalid UTF-8 reason", one(closeWith(1000, string(unhex("cebae1bdb9cf83cebcceb5eda080656469746564")))), fail(1007), pass)
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		add(fmt.Sprintf("7.7.%d", i+1), fmt.Sprintf("close with valid code %d: echoed", code), one(closeWith(code, "")), fail(1000, code), pass)
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		add(fmt.Sprintf("7.9.%d", i+1), fmt.Sprintf("close with invalid code %d", code), one(closeWith(code, "")), fail(1002), pass)
	}
	add("7.13.1", "close with code 5000 (undefined by RFC 6455 7.4.2)", one(closeWith(5000, "")), fail(1002), pass)
	add("7.13.2", "close with code 65535", one(closeWith(65535, "")), fail(1002), pass)
	return cs
}

// Section 9 sizes, scaled down from Autobahn's so that the suite runs in well under a minute
// with -race on 2 cores: Autobahn's sizes, except that only 9.1.6 sends 16 MiB (9.2.6
// sends 8 MiB, where Autobahn sends 16 MiB).
func limitCases() []tcase {
	var cs []tcase
	add := func(id, name string, send func() []chunk, w want, v verdict) {
		cs = append(cs, tcase{id: id, name: id + " " + name, send: send, want: w, verdict: v})
	}
	const (
		KiB = 1 << 10
		MiB = 1 << 20
	)
	payload := func(op byte, n int) []byte {
		if op == opText {
			return bytes.Repeat([]byte("BAsd7&jh23"), n/10+1)[:n]
		}
		return rep("\xfe", n)
	}
	kind := map[byte]string{opText: "text", opBinary: "binary"}
	for sec, op := range []byte{opText, opBinary} {
		sizes := []int{64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB} // as Autobahn
		if op == opBinary {
			sizes[5] = 8 * MiB
		}
		for i, n := range sizes {
			add(fmt.Sprintf("9.%d.%d", sec+1, i+1), fmt.Sprintf("%s message of %s", kind[op], size(n)),
				func() []chunk { return []chunk{{data: frm(true, 0, op, payload(op, n))}} },
				want{events: []event{msg(op, payload(op, n))}}, pass)
		}
	}
	for sec, op := range []byte{opText, opBinary} {
		const total = 4 * MiB // as Autobahn
		for i, fs := range []int{64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB} {
			add(fmt.Sprintf("9.%d.%d", sec+3, i+1), fmt.Sprintf("%s message of %s in fragments of %s", kind[op], size(total), size(fs)),
				func() []chunk { return []chunk{{data: fragments(op, payload(op, total), fs)}} },
				want{events: []event{msg(op, payload(op, total))}}, pass)
		}
	}
	for sec, op := range []byte{opText, opBinary} {
		const total = 1 * MiB // as Autobahn
		for i, c := range []int{64, 128, 256, 512, 1024, 2048} {
			add(fmt.Sprintf("9.%d.%d", sec+5, i+1), fmt.Sprintf("%s message of %s written in chops of %d octets", kind[op], size(total), c),
				func() []chunk { return []chunk{{data: frm(true, 0, op, payload(op, total)), chop: c}} },
				want{events: []event{msg(op, payload(op, total))}}, pass)
		}
	}
	for sec, op := range []byte{opText, opBinary} {
		const count = 1000 // as Autobahn
		for i, n := range []int{0, 16, 64, 256, 1 * KiB, 4 * KiB} {
			add(fmt.Sprintf("9.%d.%d", sec+7, i+1), fmt.Sprintf("%d %s messages of %s, each after the previous echo", count, kind[op], size(n)),
				func() []chunk {
					var cs []chunk
					for k := range count {
						cs = append(cs, chunk{data: frm(true, 0, op, payload(op, n)), await: k})
					}
					return cs
				},
				want{events: slicesRepeat(msg(op, payload(op, n)), count)}, pass)
		}
	}
	return cs
}

func slicesRepeat(e event, n int) []event {
	out := make([]event, n)
	for i := range out {
		out[i] = e
	}
	return out
}

func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

var _ = time.Second
