package main

import (
	"path/filepath"
	"strconv"
	"testing"
)

// A part's variant (livepoll-serve, run in the connect part only, not in -impl) gets its
// row in that part's table, and "—" in the losses table for the parts it did not run.
func TestVariantRows(t *testing.T) {
	if app, extra, ok := variantOf("livepoll-serve"); !ok || app != "livepoll" || len(extra) != 1 || extra[0] != "-serve" {
		t.Fatalf("variantOf(livepoll-serve) = %q, %q, %v", app, extra, ok)
	}
	if _, _, ok := variantOf("nbio"); ok {
		t.Fatal("nbio is not a variant")
	}
	dir := t.TempDir()
	impls := []string{"livepoll", "nbio"}
	connect := func(rate int) string {
		return `{"connections":{"connect_rate_per_sec":` + strconv.Itoa(rate) + `,"failed":0,"server_closed":0}}`
	}
	writePart(t, dir, "connect", append(impls, "livepoll-serve"), nil, func(impl string, r int) string {
		return connect(map[string]int{"livepoll": 7000, "nbio": 7200, "livepoll-serve": 8800}[impl] + r)
	})
	// The part file records the variant only in its records, as runPart does.
	var pf partFile
	if err := readJSON(filepath.Join(dir, "connect.json"), &pf); err != nil {
		t.Fatal(err)
	}
	pf.Meta.Impls = impls
	if err := writeJSON(filepath.Join(dir, "connect.json"), pf); err != nil {
		t.Fatal(err)
	}
	writePart(t, dir, "echo", impls, nil, func(string, int) string {
		return `{"load":{"deliveries_per_sec":1000,"lost":0,"unanswered":0},"connections":{"server_closed":0}}`
	})
	tables := reportTables(t, dir)
	wantInTables(t, tables, "| livepoll-serve | 8,802 (8,801–8,803) | 0 | 0 |", "| livepoll-serve | — | — | — | 0 | 0 |")
}
