//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if role := childRole(os.Args); role != "" {
		os.Exit(runChild(role))
	}
	cfg, err := parseConfig(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	// A last resort: children die with this process (PDEATHSIG).
	time.AfterFunc(cfg.Timeout+time.Minute, func() {
		fmt.Fprintf(os.Stderr, "loadgen: still running %v after -timeout, exiting\n", time.Minute)
		os.Exit(2)
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	r.print(os.Stdout)
	if cfg.JSON != "" {
		if err := r.writeJSON(cfg.JSON); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
}
