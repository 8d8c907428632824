package srvstats

import (
	"context"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/livepoll/livepoll/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestHandlerAndFetch(t *testing.T) {
	var c Counters
	c.Sessions.Add(3)
	c.Auths.Add(4)
	c.Closes.Add(1)
	hs := httptest.NewServer(Handler(&c))
	defer hs.Close()
	for _, gc := range []bool{false, true} {
		s, err := Fetch(context.Background(), hs.URL, gc)
		if err != nil {
			t.Fatal(err)
		}
		if s.Sessions != 3 || s.Auths != 4 || s.Closes != 1 || s.HeapInuse == 0 || s.Goroutines == 0 {
			t.Errorf("gc=%v: %+v", gc, s)
		}
		if runtime.GOOS == "linux" && (s.RSSBytes == 0 || s.FDs <= 0 || s.CPUUserNs+s.CPUSysNs <= 0 || s.Threads <= 0) {
			t.Errorf("gc=%v: process figures missing: %+v", gc, s)
		}
	}
}

func TestFetchReportsTheStatus(t *testing.T) {
	hs := httptest.NewServer(nil) // DefaultServeMux: 404 for /stats
	defer hs.Close()
	if _, err := Fetch(context.Background(), hs.URL+"/stats", false); err == nil {
		t.Error("404: no error")
	}
}
