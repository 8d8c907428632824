//go:build unix

package interop

import (
	"strconv"
	"testing"
	"time"

	"github.com/livepoll/livepoll/internal/browsertest"
)

// nodeReady checks what the JS clients need: node on PATH and interop/js's npm ci.
func nodeReady(t *testing.T) browsertest.Scripts {
	t.Helper()
	return browsertest.NeedNode(t, "js", "interop/js", "ws", "playwright-core")
}

// TestNodeWS runs checks.mjs with the ws package (interop/js/package.json pins it).
func TestNodeWS(t *testing.T) {
	t.Parallel()
	js := nodeReady(t)
	a := runServer(t)
	out := js.Run(t, 90*time.Second, "node_client.mjs", a.wsURL, strconv.Itoa(int(idle/time.Millisecond)))
	r := parseReport(t, out)
	t.Logf("ws %s", r.Version)
	checkReport(t, a, "ws", r, true)
}

// TestChromium runs checks.mjs in a page of headless Chromium, served by the test server.
func TestChromium(t *testing.T) {
	t.Parallel()
	js := nodeReady(t)
	chromium := browsertest.NeedChromium(t)
	a := runServer(t)
	page := a.base + "/?idle=" + strconv.Itoa(int(idle/time.Millisecond))
	out := js.Run(t, 120*time.Second, "browser_client.mjs", page, chromium)
	r := parseReport(t, out)
	t.Logf("chromium %s (%s)", r.Browser, r.Version)
	checkReport(t, a, "chromium", r, false)
}
