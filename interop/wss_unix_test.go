//go:build unix

package interop

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/browsertest"
)

// The node and Chromium checks also run over wss, against the same server through
// Server.ServeTLS with a certificate the test makes.

// TestNodeWSS runs checks.mjs with the ws package over wss (ServeTLS), trusting the
// test's certificate through NODE_EXTRA_CA_CERTS (so not parallel: it sets the env).
func TestNodeWSS(t *testing.T) {
	js := nodeReady(t)
	a := runServer(t)
	t.Setenv("NODE_EXTRA_CA_CERTS", a.caFile)
	out := js.Run(t, 90*time.Second, "node_client.mjs", a.wssURL, strconv.Itoa(int(idle/time.Millisecond)))
	r := parseReport(t, out)
	t.Logf("ws %s over wss", r.Version)
	checkReport(t, a, "ws", r, true)
	a.allOverTLS(t)
}

// TestChromiumWSS runs the page's checks against the wss URL (ServeTLS); Chromium is
// started with --ignore-certificate-errors, as it has no way to trust the test's CA.
func TestChromiumWSS(t *testing.T) {
	t.Parallel()
	js := nodeReady(t)
	chromium := browsertest.NeedChromium(t)
	a := runServer(t)
	page := a.base + "/?idle=" + strconv.Itoa(int(idle/time.Millisecond)) + "&url=" + url.QueryEscape(a.wssURL)
	out := js.Run(t, 120*time.Second, "browser_client.mjs", page, chromium)
	r := parseReport(t, out)
	t.Logf("chromium %s (%s) over wss", r.Browser, r.Version)
	checkReport(t, a, "chromium", r, false)
	a.allOverTLS(t)
}
