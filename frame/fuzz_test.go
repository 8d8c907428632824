package frame

import (
	"math/rand/v2"
	"testing"
)

// FuzzReader feeds arbitrary bytes to a Reader whole, in random pieces and
// (up to 1 KiB) byte by byte: it must never panic, and how the input is
// split must not change what the handler sees, the error, or what the Reader
// holds at the end. The corpus starts from the RFC table cases.
func FuzzReader(f *testing.F) {
	for i, tc := range readCases() {
		if len(tc.in) > 4096 {
			continue
		}
		f.Add(tc.in, uint64(i), uint32(tc.limit), uint8(0))
	}
	f.Add(concat(fragment(1, "a"), frame(9, ""), frame(0, "b"), frame(1, "c")), uint64(1), uint32(0), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, limit uint32, failAt uint8) {
		whole := run(in, nil, int64(limit), int(failAt))
		rng := rand.New(rand.NewPCG(seed, uint64(len(in))))
		for range 4 {
			cuts := randomCuts(rng, len(in))
			if got := run(in, cuts, int64(limit), int(failAt)); !got.equal(whole) {
				t.Fatalf(
					"cut at %v:\ngot  %v\nwant %v",
					cuts, got, whole,
				)
			}
		}
		if got := runPausing(in, int64(limit), int(failAt)); !got.equal(whole) {
			t.Fatalf("pausing after every frame:\ngot  %v\nwant %v", got, whole)
		}
		if len(in) > 1024 {
			return // byte by byte would slow the fuzzer down for little gain
		}
		every := make([]int, 0, len(in))
		for c := 1; c < len(in); c++ {
			every = append(every, c)
		}
		if got := run(in, every, int64(limit), int(failAt)); !got.equal(whole) {
			t.Fatalf(
				"byte by byte:\ngot  %v\nwant %v",
				got, whole,
			)
		}
	})
}
