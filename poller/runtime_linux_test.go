package poller

import "testing"

// On Linux the loop parks in the Go runtime's netpoller rather than blocking a thread in
// epoll_wait (the other tests check that events are delivered either way).
func TestLoopParksInRuntimeNetpoller(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.parksInRuntime() {
		t.Fatal("the epoll descriptor was not taken by the runtime's netpoller")
	}
}
