package hist

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverValues(t *testing.T) {
	for _, v := range []uint64{0, 1, 15, 16, 17, 31, 32, 1000, 1 << 40, 1<<63 - 1} {
		i := index(v)
		if lo, hi := lower(i), lower(i+1); v < lo || (hi > lo && v >= hi) {
			t.Errorf("value %d in bucket %d = [%d,%d)", v, i, lo, hi)
		}
	}
}

func TestQuantileWithinBucketError(t *testing.T) {
	var h Hist
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = int64(rand.ExpFloat64() * 1e6)
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := float64(vals[int(q*float64(len(vals)))-1])
		got := float64(h.Quantile(q))
		if got < want*0.93 || got > want*1.07 {
			t.Errorf("q%.3f = %v, want about %v", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) {
		t.Errorf("max %v, want %v", h.Max(), vals[len(vals)-1])
	}
}

func TestJSONRoundTrip(t *testing.T) {
	var h Hist
	for i := range 10000 {
		h.Record(int64(i * i))
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var got Hist
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("round trip changed the histogram: %s", b)
	}
	var empty Hist
	if b, _ := json.Marshal(&empty); string(b) != `{"n":0,"max_ns":0,"buckets":[]}` {
		t.Errorf("empty: %s", b)
	}
	for _, bad := range []string{`{"n":1,"buckets":[[99999,1]]}`, `{"n":2,"buckets":[[1,1]]}`} {
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestMerge(t *testing.T) {
	var a, b, all Hist
	for i := range 1000 {
		v := int64(i) * 1000
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Error("merge of two halves differs from the whole")
	}
}
