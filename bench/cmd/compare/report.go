package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// partNames is every part, in the order of the tables.
var partNames = []string{"memory", "fanout", "window16", "latency", "echo", "connect", "abuse", "fanout2k", "fanoutz", "memoryz",
	"memorytls", "fanouttls"}

// summary is what the report is made of: every part file found in -out.
type summary struct {
	Parts  []meta    `json:"parts"`
	Failed []failure `json:"failed_runs"` // program runs that failed: their figures are unknown
	// Skipped are the implementations a part did not run (a library without compression,
	// or that cannot be served over wss):
	// n/a in its tables and charts, with the reason.
	Skipped []skip   `json:"skipped,omitempty"`
	Stats   []Stat   `json:"stats"`
	impls   []string // table and chart order
	st      stats
}

type skip struct {
	Part   string `json:"part"`
	Impl   string `json:"impl"`
	Reason string `json:"reason"`
}

type failure struct {
	Part  string `json:"part"`
	Run   int    `json:"run"`
	Impl  string `json:"impl"`
	Error string `json:"error"`
}

// load reads every <part>.json in dir and summarises each implementation's
// runs. A part file in the layout before -runs (a bare list of results)
// is an error: it cannot say which commit or command produced it.
func load(dir string) (*summary, error) {
	s := &summary{}
	for _, name := range partNames {
		var pf partFile
		if err := readJSON(filepath.Join(dir, name+".json"), &pf); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			var old []json.RawMessage
			if readJSON(filepath.Join(dir, name+".json"), &old) == nil {
				return nil, fmt.Errorf("%s.json is from before -runs (a bare list, no commit or command): run that part again or delete the file", name)
			}
			return nil, fmt.Errorf("%s.json: %w", name, err)
		}
		s.addPart(name, pf)
	}
	s.Stats = s.st.list
	return s, nil
}

// addPart summarises one part's records.
func (s *summary) addPart(name string, pf partFile) {
	m := pf.Meta
	m.Impls = slices.Clone(m.Impls)
	for _, r := range pf.Records {
		// A part's variants (livepoll-serve) are not in -impl, but they were measured.
		if r.Impl != "floor" && !slices.Contains(m.Impls, r.Impl) {
			m.Impls = append(m.Impls, r.Impl)
		}
	}
	s.Parts = append(s.Parts, m)
	names := slices.Clone(pf.Meta.Impls)
	for _, r := range pf.Records {
		if !slices.Contains(names, r.Impl) {
			names = append(names, r.Impl) // the floor
		}
	}
	for _, impl := range names {
		if !slices.Contains(s.impls, impl) {
			s.impls = append(s.impls, impl)
		}
		n := max(pf.Meta.Runs, 1)
		perRun := make([]map[string]float64, n)
		present := make([]map[string]bool, n)
		for _, r := range pf.Records {
			if r.Impl != impl || r.Run < 1 || r.Run > n {
				continue
			}
			if r.Skipped != "" {
				if s.st.na[[2]string{name, impl}] == "" {
					s.Skipped = append(s.Skipped, skip{Part: name, Impl: impl, Reason: r.Skipped})
				}
				s.st.notApplicable(name, impl, r.Skipped)
				continue
			}
			if r.Error != "" {
				s.Failed = append(s.Failed, failure{Part: name, Run: r.Run, Impl: impl, Error: r.Error})
			}
			var res map[string]any
			if len(r.Result) > 0 && json.Unmarshal(r.Result, &res) == nil && r.Error == "" {
				perRun[r.Run-1], present[r.Run-1] = extract(name, res)
			}
		}
		for _, st := range fromRuns(impl, units, perRun, present) {
			s.st.add(st)
		}
		// Metrics that no run reported still need their run count, so
		// that tables say "?" for them with the right denominator.
		s.st.runs(impl, n)
	}
}

// runs remembers how many runs impl had, for metrics it never reported.
func (st *stats) runs(impl string, n int) {
	if st.nruns == nil {
		st.nruns = map[string]int{}
	}
	st.nruns[impl] = max(st.nruns[impl], n)
}

// report writes summary.json, summary.csv, tables.md and the charts for
// every part found in dir, and, when doc is set, puts the tables into that
// markdown file between its markers (splice).
func report(dir, doc string) error {
	s, err := load(dir)
	if err != nil {
		return err
	}
	if len(s.Parts) == 0 {
		return errors.New("no part results in " + dir)
	}
	if err := writeJSON(filepath.Join(dir, "summary.json"), s); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(dir, "summary.csv"), &s.st); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tables.md"), []byte(tables(s)), 0o644); err != nil {
		return err
	}
	if doc != "" {
		stale, err := spliceFile(doc, sections(s))
		if err != nil {
			return err
		}
		if len(stale) > 0 {
			log.Printf("compare: %s: no table for markers %v (left as they were)", doc, stale)
		}
	}
	if err := drawCharts(dir, s); err != nil {
		return err
	}
	var readme strings.Builder
	readme.WriteString("Written by bench/cmd/compare (tables.md names commit, Go version and date per part):\n")
	for _, m := range s.Parts {
		fmt.Fprintf(&readme, "  %s: cd bench && %s\n", m.Part, m.Command)
	}
	return os.WriteFile(filepath.Join(dir, "README.txt"), []byte(readme.String()), 0o644)
}
