package tlsrec

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestProbeKTLS checks the probe against the kernel's own list of loaded upper-layer
// protocols: "tls" listed means the probe must succeed; a failure must say why and
// wrap ErrKTLSUnavailable. (The probe may also succeed when the list lacks "tls": the
// kernel loads the module on demand when it can.)
func TestProbeKTLS(t *testing.T) {
	err := ProbeKTLS()
	list, rerr := os.ReadFile("/proc/sys/net/ipv4/tcp_available_ulp")
	if rerr != nil {
		t.Fatalf("cannot read the kernel's ULP list: %v (probe: %v)", rerr, err)
	}
	listed := strings.Contains(" "+strings.TrimSpace(string(list))+" ", " tls ")
	t.Logf("ULPs %q; ProbeKTLS: %v", strings.TrimSpace(string(list)), err)
	switch {
	case listed && err != nil:
		t.Fatalf("the kernel lists the tls ULP but the probe failed: %v", err)
	case err != nil && !errors.Is(err, ErrKTLSUnavailable):
		t.Fatalf("the probe's error does not wrap ErrKTLSUnavailable: %v", err)
	case err == nil:
		// Accepted: after the probe the module is loaded, so the list must show it.
		list, _ = os.ReadFile("/proc/sys/net/ipv4/tcp_available_ulp")
		if !strings.Contains(string(list), "tls") {
			t.Fatalf("the probe succeeded but the kernel lists only %q", list)
		}
	}
}
