package tlsrec

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEchoTLS13ChaCha: a Go client picks TLS_CHACHA20_POLY1305_SHA256 only on a machine
// without AES hardware (crypto/tls offers no knob for TLS 1.3 suites), so the test runs
// itself again with GODEBUG=cpu.aes=off, where client and server both see none.
func TestEchoTLS13ChaCha(t *testing.T) {
	if os.Getenv("TLSREC_CHILD") == "chacha" {
		p := getPKI(t)
		h := newHarness(t, p.serverConfig(), Options{}, 4096)
		echoSession(t, h, p.clientConfig(), tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEchoTLS13ChaCha$", "-test.v", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), "TLSREC_CHILD=chacha", "GODEBUG=cpu.aes=off")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestEchoTLS13ChaCha") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestDataBehindFinished: a TLS 1.3 client's first application record arrives in the
// same Feed as its Finished. crypto/tls must not read it; Result's rest holds it.
func TestDataBehindFinished(t *testing.T) {
	p := getPKI(t)
	r, err := NewRunner(p.serverConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cEnd, sEnd := net.Pipe()
	defer cEnd.Close()
	defer sEnd.Close()
	sEnd.SetDeadline(time.Now().Add(10 * time.Second))
	wake := make(chan struct{}, 1)
	h := r.Start(nil, nil, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer h.Abort()
	const msg = "right behind Finished"
	clientErr := make(chan error, 1)
	go func() {
		c := tls.Client(cEnd, p.clientConfig())
		c.SetDeadline(time.Now().Add(10 * time.Second))
		err := c.Handshake()
		if err == nil {
			_, err = c.Write([]byte(msg))
		}
		clientErr <- err
	}()
	// The server's output goes to the client from its own goroutine: the client stops
	// reading once it has written (the tickets stay unread), and closing ends the write.
	outc := make(chan []byte, 16)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for b := range outc {
			if _, err := sEnd.Write(b); err != nil {
				return
			}
		}
	}()
	defer func() { close(outc); sEnd.Close(); <-writerDone }()
	// The client's records, one by one, from a reader goroutine (it ends when the
	// pipe closes).
	recs := make(chan []byte, 16)
	go func() {
		defer close(recs)
		for {
			hdr := make([]byte, headerLen)
			if _, err := io.ReadFull(sEnd, hdr); err != nil {
				return
			}
			body := make([]byte, recordLen(hdr))
			if _, err := io.ReadFull(sEnd, body); err != nil {
				return
			}
			recs <- append(hdr, body...)
		}
	}()
	// Feed the ClientHello; hold back the rest until the client's Finished and its
	// first data are both in.
	var held []byte
	fed := false
	for encrypted := 0; encrypted < 2; {
		select {
		case <-wake:
			outc <- h.Output(nil)
		case rec, ok := <-recs:
			if !ok {
				t.Fatal("the client's side ended early")
			}
			if !fed {
				if err := h.Feed(rec); err != nil {
					t.Fatal(err)
				}
				fed = true
				continue
			}
			if rec[0] == typeApplicationData {
				encrypted++
			}
			held = append(held, rec...)
		case <-time.After(10 * time.Second):
			t.Fatal("no progress within 10 s")
		}
	}
	if err := <-clientErr; err != nil {
		t.Fatal("client:", err)
	}
	if err := h.Feed(held); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h.Done)
	c, rest, err := h.Result()
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Open(nil, rest)
	if err != nil || string(got) != msg {
		t.Fatalf("rest opened to %q, %v; want %q", got, err, msg)
	}
}
