// Command testreport reads `go test -json` and prints what a person wants from it: the full
// output of every failing test, one ok/FAIL line per package, and, with -summary, every
// skipped test with its reason and the totals. CI runs each go test through it and keeps
// the events, so that a skip cannot pass unnoticed among thousands of passing tests.
//
//	go test -json ./... | testreport -save run.jsonl
//	testreport -summary run.jsonl more.jsonl
//
// The first form exits 1 if a test or a package failed; the second if any of the saved
// events is a failure, so the summary alone is a sound verdict for the whole run.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	save := flag.String("save", "", "append every event read from stdin to this file")
	verbose := flag.Bool("v", false, "print the output of passing tests too")
	summary := flag.Bool("summary", false, "read the files named as arguments and print the skipped tests and the totals")
	flag.Parse()

	if *summary {
		r, err := readFiles(flag.Args())
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
		r.printSummary(os.Stdout)
		if r.failed() {
			os.Exit(1)
		}
		return
	}

	in := io.Reader(os.Stdin)
	if *save != "" {
		f, err := os.OpenFile(*save, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = io.TeeReader(os.Stdin, f)
	}
	r := newReport(os.Stdout)
	r.verbose = *verbose
	if err := r.read(in); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if r.failed() {
		os.Exit(1)
	}
}
