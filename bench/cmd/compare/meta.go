package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// describe records what the run measures: the commit (and whether the tree
// had uncommitted changes, not counting -out), the Go toolchain that builds
// the servers, the kernel, and the command line as typed in bench/.
func describe(ctx context.Context) (meta, error) {
	m := meta{Started: time.Now().UTC(), Runs: *runs, Impls: implList(), CPUs: runtime.NumCPU()}
	git := func(args ...string) string {
		b, err := exec.CommandContext(ctx, "git", args...).Output()
		if err != nil {
			return "unknown (" + err.Error() + ")"
		}
		return strings.TrimSpace(string(b))
	}
	m.Commit = git("rev-parse", "HEAD")
	status := []string{"status", "--porcelain", "--", ":/"}
	if top := git("rev-parse", "--show-toplevel"); top != "" {
		if abs, err := filepath.Abs(*out); err == nil {
			if rel, err := filepath.Rel(top, abs); err == nil && !strings.HasPrefix(rel, "..") {
				status = append(status, ":(top,exclude)"+rel)
			}
		}
	}
	m.Dirty = git(status...) != ""
	if b, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	// Under go run, os.Args[0] is a temporary binary: name the command as typed.
	m.Command = "go run ./cmd/compare"
	for _, a := range os.Args[1:] {
		m.Command += " " + shellQuote(a)
	}
	return m, nil
}

// shellQuote quotes a for a POSIX shell when it needs it.
func shellQuote(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
