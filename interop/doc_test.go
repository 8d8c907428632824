// Package interop checks livepoll's live package end to end with WebSocket clients
// written by others: node's ws package, headless Chromium's own WebSocket (driven by
// playwright-core), gorilla/websocket and coder/websocket. Every client runs the same
// sequence against the same server app (see runServer) and reports what it saw in a
// report; checkReport asserts it.
//
// The JavaScript clients need `npm ci` in interop/js, node on PATH and /usr/bin/chromium
// (.ci/setup, run by README's test command, installs them). When they are missing the tests fail if CI=true and are skipped
// otherwise.
package interop
