// Package browsertest is what the tests that drive Node.js scripts and
// headless Chromium share (interop's JS clients, examples/chat's end-to-end
// test): finding node, the scripts' npm packages and Chromium, where a
// missing one fails the test under CI=true and skips it otherwise (Need),
// and running a script (Scripts.Run, on unix).
package browsertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ChromiumPath is Debian's chromium, which .ci/setup installs.
const ChromiumPath = "/usr/bin/chromium"

// Need skips the test when a prerequisite is missing, or fails it under CI=true.
func Need(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a prerequisite is missing: "+format, args...)
	}
	t.Skipf("skipped, a prerequisite is missing (with CI=true this fails): "+format, args...)
}

// Scripts is a directory of Node.js scripts with its own package.json, and
// the node that runs them.
type Scripts struct {
	Node string // node's path
	Dir  string // relative to the test's working directory
}

// NeedNode finds node on PATH and checks that `npm ci` in dir has installed
// pkgs (Need). name is dir as the repository names it, for the messages:
// "interop/js".
func NeedNode(t testing.TB, dir, name string, pkgs ...string) Scripts {
	t.Helper()
	node, err := exec.LookPath("node")
	Need(t, err == nil, "node is not on PATH (%v); install nodejs and npm, then run `npm ci` in %s", err, name)
	for _, pkg := range pkgs {
		_, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json"))
		Need(t, err == nil, "%s/node_modules/%s is missing: run `npm ci` in %s (%v)", name, pkg, name, err)
	}
	return Scripts{Node: node, Dir: dir}
}

// NeedChromium checks that ChromiumPath exists (Need) and returns it.
func NeedChromium(t testing.TB) string {
	t.Helper()
	_, err := os.Stat(ChromiumPath)
	Need(t, err == nil, "%s is missing: apt-get install -y chromium (%v)", ChromiumPath, err)
	return ChromiumPath
}
