package frame

import (
	"testing"
	"unicode/utf8"
)

var utf8Cases = []struct {
	name  string
	text  string
	valid bool
}{
	{
		name:  "empty",
		text:  "",
		valid: true,
	},
	{
		name:  "ASCII",
		text:  "Hello, world",
		valid: true,
	},
	{
		name:  "two, three and four byte runes",
		text:  "é κόσμε € \U0001F600 \U0010FFFF",
		valid: true,
	},
	{
		name:  "boundaries of each length",
		text:  "\u007f\u0080\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010FFFF",
		valid: true,
	},
	{
		name:  "surrogate half ED A0 80",
		text:  "a\xed\xa0\x80b",
		valid: false,
	},
	{
		name:  "last surrogate ED BF BF",
		text:  "\xed\xbf\xbf",
		valid: false,
	},
	{
		name:  "overlong NUL C0 80",
		text:  "\xc0\x80",
		valid: false,
	},
	{
		name:  "overlong C1 BF",
		text:  "\xc1\xbf",
		valid: false,
	},
	{
		name:  "overlong three bytes E0 80 80",
		text:  "\xe0\x80\x80",
		valid: false,
	},
	{
		name:  "overlong four bytes F0 8F BF BF",
		text:  "\xf0\x8f\xbf\xbf",
		valid: false,
	},
	{
		name:  "over U+10FFFF F4 90 80 80",
		text:  "\xf4\x90\x80\x80",
		valid: false,
	},
	{
		name:  "F5 never appears",
		text:  "\xf5\x80\x80\x80",
		valid: false,
	},
	{
		name:  "lone continuation byte",
		text:  "ab\x80cd",
		valid: false,
	},
	{
		name:  "four continuation bytes",
		text:  "\xf0\x90\x80\x80\x80",
		valid: false,
	},
	{
		name:  "truncated at the end",
		text:  "abc\xf0\x9f\x98",
		valid: false,
	},
	{
		name:  "truncated before ASCII",
		text:  "\xe2\x82a",
		valid: false,
	},
	{
		name:  "FF",
		text:  "\xff",
		valid: false,
	},
}

func TestUTF8Validator(t *testing.T) {
	for _, tc := range utf8Cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if utf8.ValidString(tc.text) != tc.valid {
				t.Fatalf(
					"bad case: utf8.ValidString = %v",
					!tc.valid,
				)
			}
			checkUTF8Splits(t, []byte(tc.text))
		})
	}
}

// checkUTF8Splits feeds p to the validator cut at every boundary, at every
// pair of boundaries (up to 64 bytes) and byte by byte: the verdict must be utf8.Valid's, and an
// invalid text must be refused in the piece holding its first bad byte.
func checkUTF8Splits(t *testing.T, p []byte) {
	t.Helper()
	check := func(cuts []int) {
		t.Helper()
		if got, want := validatePieces(p, cuts), firstBadByte(p); got != want {
			t.Fatalf(
				"%q cut at %v: refused at piece ending %d, want %d (utf8.Valid: %v)",
				p, cuts, got, want, utf8.Valid(p),
			)
		}
	}
	check(nil)
	every := make([]int, 0, len(p))
	for i := 1; i < len(p); i++ {
		every = append(every, i)
		check([]int{i})
		for j := i + 1; j < len(p) && len(p) <= 64; j++ {
			check([]int{i, j})
		}
	}
	check(every)
}

// validatePieces reports where the validator refuses p cut at cuts, as a
// position that identifies the piece: the first bad byte if it is in the
// piece that was refused, len(p) when the text is incomplete at the end,
// -1 when p is valid, -2 when the refused piece does not hold the first
// bad byte.
func validatePieces(p []byte, cuts []int) int {
	var v utf8Validator
	bad := firstBadByte(p)
	prev := 0
	for i := 0; i <= len(cuts); i++ {
		end := len(p)
		if i < len(cuts) {
			end = cuts[i]
		}
		if !v.write(p[prev:end]) {
			if bad >= prev && bad < end {
				return bad
			}
			return -2
		}
		prev = end
	}
	if !v.complete() {
		return len(p)
	}
	return -1
}

// firstBadByte is the reference: the index of the first byte after which p
// can no longer be the start of valid UTF-8; len(p) if p is such a start
// but ends inside a rune; -1 if p is valid.
func firstBadByte(p []byte) int {
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		if r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		if !utf8.FullRune(p[i:]) {
			return len(p) // a valid start of a rune, cut off
		}
		// An invalid sequence: find its first byte that breaks it.
		for j := i + 1; j <= len(p); j++ {
			if utf8.FullRune(p[i:j]) {
				return j - 1
			}
		}
	}
	return -1
}

func FuzzUTF8(f *testing.F) {
	for _, tc := range utf8Cases {
		f.Add([]byte(tc.text))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > 4096 {
			p = p[:4096] // every cut is tried: keep it fast
		}
		checkUTF8Splits(t, p)
		var v utf8Validator
		if got := v.write(p) && v.complete(); got != utf8.Valid(p) {
			t.Fatalf(
				"validator says %v for %q, utf8.Valid says %v",
				got, p, !got,
			)
		}
	})
}

// TestUTF8ValidatorExhaustive steps every 1- and 2-byte string, every 3-byte
// string that starts with a 3-byte lead, and 4-byte strings around every
// range boundary, byte by byte through write and through step alone, and
// compares with utf8.Valid.
func TestUTF8ValidatorExhaustive(t *testing.T) {
	check := func(p []byte) {
		var v utf8Validator
		ok := true
		for i := range p {
			if !v.write(p[i : i+1]) {
				ok = false
				break
			}
		}
		if ok = ok && v.complete(); ok != utf8.Valid(p) {
			t.Fatalf(
				"validator says %v for % x, utf8.Valid says %v",
				ok, p, !ok,
			)
		}
		// step alone is a whole validator too.
		var s utf8Validator
		ok = true
		for _, b := range p {
			if !s.step(b) {
				ok = false
				break
			}
		}
		if ok = ok && s.complete(); ok != utf8.Valid(p) {
			t.Fatalf(
				"step says %v for % x, utf8.Valid says %v",
				ok, p, !ok,
			)
		}
	}
	for a := range 256 {
		check([]byte{byte(a)})
		for b := range 256 {
			check([]byte{byte(a), byte(b)})
		}
	}
	for a := 0xe0; a < 0xf0; a++ {
		for b := range 256 {
			for c := range 256 {
				check([]byte{byte(a), byte(b), byte(c)})
			}
		}
	}
	edges := []byte{0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff}
	for a := 0xf0; a < 0x100; a++ {
		for _, b := range edges {
			for _, c := range edges {
				for _, d := range edges {
					check([]byte{byte(a), b, c, d})
				}
			}
		}
	}
}
