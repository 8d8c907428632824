package tlsrec

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// needOpenSSL finds openssl, or skips the test saying why — and fails it under CI=true,
// where a missing prerequisite is an error.
func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not found (apt-get install -y openssl); CI=true requires it")
		}
		t.Skip("openssl not found: apt-get install -y openssl runs the openssl s_client interop tests")
	}
	return path
}

// sClient is a running `openssl s_client` whose stdin and stdout the test holds.
type sClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout: what the server sent
	events chan string // stderr: s_client's own messages
	stderr lockedBuffer
	cancel context.CancelFunc
	pipes  sync.WaitGroup
}

func startSClient(t *testing.T, h *harness, args ...string) *sClient {
	t.Helper()
	bin := needOpenSSL(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, getPKI(t).caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	base := []string{"s_client", "-connect", h.addr(), "-servername", "localhost", "-CAfile", ca,
		"-verify_return_error", "-alpn", "http/1.1", "-brief"}
	s := &sClient{t: t, cmd: exec.CommandContext(ctx, bin, append(base, args...)...),
		lines: make(chan string, 64), events: make(chan string, 64), cancel: cancel}
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pipes.Add(2)
	go s.scan(stdout, s.lines, nil)
	go s.scan(stderr, s.events, &s.stderr)
	t.Cleanup(func() { s.stop() })
	return s
}

// scan passes r's lines to ch (dropping them when nobody waits) and copies them to log.
func (s *sClient) scan(r io.Reader, ch chan string, log *lockedBuffer) {
	defer s.pipes.Done()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if log != nil {
			log.Write([]byte(sc.Text() + "\n"))
		}
		select {
		case ch <- sc.Text():
		default:
		}
	}
	close(ch)
}

func (s *sClient) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		s.t.Fatalf("writing to s_client: %v\n%s", err, s.stderr.String())
	}
}

// expect waits for line on s_client's stdout (what the server sent).
func (s *sClient) expect(line string) { s.t.Helper(); s.wait(s.lines, line) }

// expectEvent waits for line on s_client's stderr.
func (s *sClient) expectEvent(line string) { s.t.Helper(); s.wait(s.events, line) }

func (s *sClient) wait(ch chan string, line string) {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-ch:
			if !ok {
				s.t.Fatalf("s_client ended before %q:\n%s", line, s.stderr.String())
			}
			if got == line {
				return
			}
		case <-timeout:
			s.t.Fatalf("no %q from s_client within 10 s:\n%s", line, s.stderr.String())
		}
	}
}

// stop closes stdin (s_client then sends close_notify and exits) and waits for it.
func (s *sClient) stop() error {
	s.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		s.cancel()
		err = <-done
	}
	s.cancel()
	s.pipes.Wait()
	return err
}

var opensslSuites = []struct {
	id            uint16
	flag, openssl string
}{
	{tls.TLS_AES_128_GCM_SHA256, "-ciphersuites", "TLS_AES_128_GCM_SHA256"},
	{tls.TLS_AES_256_GCM_SHA384, "-ciphersuites", "TLS_AES_256_GCM_SHA384"},
	{tls.TLS_CHACHA20_POLY1305_SHA256, "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"},
	{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"},
	{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"},
	{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"},
}

// TestOpenSSLClient: openssl s_client against the server for every suite, TLS 1.3 with
// a KeyUpdate that asks the server to update too (s_client's "K" command), TLS 1.2 with
// a renegotiation attempt (its "R" command), which is refused.
func TestOpenSSLClient(t *testing.T) {
	needOpenSSL(t)
	p := getPKI(t)
	for _, tc := range opensslSuites {
		t.Run(tls.CipherSuiteName(tc.id), func(t *testing.T) {
			h := newHarness(t, p.serverConfig(), Options{}, 4096)
			vers := "-tls1_2"
			if suiteByID(tc.id).tls13 {
				vers = "-tls1_3"
			}
			s := startSClient(t, h, vers, tc.flag, tc.openssl)
			s.send("hello from openssl")
			s.expect("hello from openssl")
			if vers == "-tls1_3" {
				s.send("K")
				// s_client drops the rest of a line it read with a command.
				s.expectEvent("KEYUPDATE")
				s.send("after the key update")
				s.expect("after the key update")
				s.stop()
				res := h.next()
				if res.err != io.EOF {
					t.Fatalf("server ended with %v, want io.EOF", res.err)
				}
				if res.conn.CipherSuite() != tc.id {
					t.Fatalf("suite %s", tls.CipherSuiteName(res.conn.CipherSuite()))
				}
				if res.conn.in.seq >= 3 {
					t.Fatalf("the client's KeyUpdate did not restart its sequence numbers (%d)", res.conn.in.seq)
				}
				return
			}
			s.send("R")
			res := h.next()
			if !errors.Is(res.err, ErrRenegotiation) {
				t.Fatalf("server ended with %v, want ErrRenegotiation", res.err)
			}
			if res.conn.CipherSuite() != tc.id {
				t.Fatalf("suite %s", tls.CipherSuiteName(res.conn.CipherSuite()))
			}
			s.stop()
		})
	}
}
