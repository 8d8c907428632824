package main

import (
	"testing"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestTally(t *testing.T) {
	subs := []account{
		{seq: 10},                       // got everything
		{seq: 10, lost: 2, dup: 1},      // two gaps and a repeat on the way
		{seq: 7},                        // live, missing the last three after the drain
		{seq: 4, closed: true},          // closed by the server after message 4
		{seq: 0, lost: 0, closed: true}, // closed before the first message
	}
	lost, lostClosed, dup := tally(10, subs)
	if lost != 2+3+6+10 || lostClosed != 6+10 || dup != 1 {
		t.Errorf("tally = lost %d, lost to closed %d, dup %d; want 21, 16, 1", lost, lostClosed, dup)
	}
	if lost, lostClosed, dup := tally(0, nil); lost != 0 || lostClosed != 0 || dup != 0 {
		t.Errorf("empty tally = %d %d %d", lost, lostClosed, dup)
	}
}
