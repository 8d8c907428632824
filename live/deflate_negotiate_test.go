package live

import (
	"fmt"
	"strings"
	"testing"
)

// TestNegotiateDeflate walks RFC 7692 section 7.1 with every parameter combination the
// Autobahn testsuite's section 13 offers, multiple offers and invalid ones.
func TestNegotiateDeflate(t *testing.T) {
	for _, tc := range negotiateCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			answer, bits := negotiateDeflate(tc.headers)
			if answer != tc.answer || bits != tc.bits {
				t.Fatalf("negotiateDeflate(%q) = %q, %d; want %q, %d", tc.headers, answer, bits, tc.answer, tc.bits)
			}
		})
	}
}

type negotiateCase struct {
	name    string
	headers []string
	answer  string
	bits    uint8
}

func negotiateCases() []negotiateCase {
	withBits := func(n int) string { return fmt.Sprintf("%s; server_max_window_bits=%d", deflateAnswer, n) }
	return []negotiateCase{
		{"no offer", nil, "", 0},
		{"another extension", []string{"x-webkit-deflate-frame"}, "", 0},
		{"plain offer", []string{"permessage-deflate"}, deflateAnswer, 15},
		{"extension name in any case", []string{"PerMessage-Deflate"}, deflateAnswer, 15},
		{"server_no_context_takeover", []string{"permessage-deflate; server_no_context_takeover"}, deflateAnswer, 15},
		{"client_no_context_takeover", []string{"permessage-deflate; client_no_context_takeover"}, deflateAnswer, 15},
		{"both no_context_takeover", []string{"permessage-deflate; client_no_context_takeover; server_no_context_takeover"}, deflateAnswer, 15},
		{"client_max_window_bits without a value", []string{"permessage-deflate; client_max_window_bits"}, deflateAnswer, 15},
		{"client_max_window_bits=8", []string{"permessage-deflate; client_max_window_bits=8"}, deflateAnswer, 15},
		{"client_max_window_bits=15", []string{"permessage-deflate; client_max_window_bits=15"}, deflateAnswer, 15},
		{"quoted value", []string{`permessage-deflate; server_max_window_bits="10"`}, withBits(10), 10},
		{"spaces around the equals sign", []string{"permessage-deflate;server_max_window_bits = 12"}, withBits(12), 12},
		{"all four", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits"}, withBits(9), 9},
		{"Chromium's offer", []string{"permessage-deflate; client_max_window_bits"}, deflateAnswer, 15},
		{"first of several offers", []string{"permessage-deflate; server_max_window_bits=8, permessage-deflate"}, withBits(8), 8},
		{"offers in several header lines", []string{"x-foo", "permessage-deflate; server_max_window_bits=11"}, withBits(11), 11},
		{"invalid offer declined, next accepted", []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"}, deflateAnswer, 15},
		{"unknown offer skipped", []string{`x-foo; a="1,2"; b, permessage-deflate`}, deflateAnswer, 15},
		{"server_max_window_bits without a value", []string{"permessage-deflate; server_max_window_bits"}, "", 0},
		{"server_max_window_bits=7", []string{"permessage-deflate; server_max_window_bits=7"}, "", 0},
		{"server_max_window_bits=16", []string{"permessage-deflate; server_max_window_bits=16"}, "", 0},
		{"server_max_window_bits with a leading zero", []string{"permessage-deflate; server_max_window_bits=09"}, "", 0},
		{"server_max_window_bits not a number", []string{"permessage-deflate; server_max_window_bits=x"}, "", 0},
		{"client_max_window_bits=16", []string{"permessage-deflate; client_max_window_bits=16"}, "", 0},
		{"client_max_window_bits empty", []string{"permessage-deflate; client_max_window_bits="}, "", 0},
		{"no_context_takeover with a value", []string{"permessage-deflate; client_no_context_takeover=1"}, "", 0},
		{"repeated parameter", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, "", 0},
		{"repeated client_max_window_bits", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}, "", 0},
		{"unknown parameter", []string{"permessage-deflate; mux"}, "", 0},
		{"empty parameter", []string{"permessage-deflate;; client_no_context_takeover"}, "", 0},
		{"trailing semicolon", []string{"permessage-deflate;"}, "", 0},
		{"unterminated quote", []string{`permessage-deflate; server_max_window_bits="10`}, "", 0},
		{"every offer invalid", []string{"permessage-deflate; x, permessage-deflate; server_max_window_bits=1"}, "", 0},
	}
}

// FuzzNegotiateDeflate: any header either declines or gives a well-formed answer with
// window bits in 8..15, and the answer, offered back, is accepted with the same bits.
func FuzzNegotiateDeflate(f *testing.F) {
	for _, tc := range negotiateCases() {
		f.Add(strings.Join(tc.headers, ", "))
	}
	f.Add(`x-foo; a="1,\"2"; b, permessage-deflate;;`)
	f.Fuzz(func(t *testing.T, h string) {
		answer, bits := negotiateDeflate([]string{h})
		if answer == "" {
			if bits != 0 {
				t.Fatalf("declined with bits %d", bits)
			}
			return
		}
		if bits < 8 || bits > 15 {
			t.Fatalf("bits %d", bits)
		}
		again, againBits := negotiateDeflate([]string{answer})
		if again != answer || againBits != bits {
			t.Fatalf("answer %q offered back: %q, %d", answer, again, againBits)
		}
	})
}
