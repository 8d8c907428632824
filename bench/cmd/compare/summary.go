package main

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Stat summarises one metric of one implementation over the runs of its part.
// A run that did not report the metric (an older loadgen without the field, a
// run that failed) is unknown: it is counted in Runs but not in Known, and
// its entry in Values is null. Min, Median and Max are over the known values.
type Stat struct {
	Impl   string     `json:"impl"`
	Metric string     `json:"metric"`
	Unit   string     `json:"unit,omitempty"`
	Runs   int        `json:"runs"`
	Known  int        `json:"known"`
	Min    float64    `json:"min"`
	Median float64    `json:"median"`
	Max    float64    `json:"max"`
	Values []*float64 `json:"values"` // per run, in run order
}

// ok says whether at least one run reported the metric.
func (s Stat) ok() bool { return s.Known > 0 }

// complete says whether every run reported it.
func (s Stat) complete() bool { return s.Known == s.Runs && s.Runs > 0 }

// summarise builds a Stat from per-run values (nil: unknown).
func summarise(impl, metric, unit string, values []*float64) Stat {
	s := Stat{Impl: impl, Metric: metric, Unit: unit, Runs: len(values), Values: values}
	var known []float64
	for _, v := range values {
		if v != nil && !math.IsNaN(*v) {
			known = append(known, *v)
		}
	}
	s.Known = len(known)
	if len(known) == 0 {
		return s
	}
	slices.Sort(known)
	s.Min, s.Max = known[0], known[len(known)-1]
	if n := len(known); n%2 == 1 {
		s.Median = known[n/2]
	} else {
		s.Median = (known[n/2-1] + known[n/2]) / 2
	}
	return s
}

// stats is every Stat of a compare run, found by implementation and metric.
type stats struct {
	list  []Stat
	index map[[2]string]int
	nruns map[string]int       // runs per implementation, for metrics it never reported
	na    map[[2]string]string // (part, impl) → why the part did not run impl
}

// notApplicable records that part did not run impl, and why.
func (st *stats) notApplicable(part, impl, reason string) {
	if st.na == nil {
		st.na = map[[2]string]string{}
	}
	st.na[[2]string{part, impl}] = reason
}

// why says why impl has no figure for metric ("<part>.<name>") because its part did not
// run it ("" if it did, or if the metric has no part prefix).
func (st *stats) why(metric, impl string) string {
	part, _, ok := strings.Cut(metric, ".")
	if !ok {
		return ""
	}
	return st.na[[2]string{part, impl}]
}

func (st *stats) add(s Stat) {
	if st.index == nil {
		st.index = map[[2]string]int{}
	}
	st.index[[2]string{s.Impl, s.Metric}] = len(st.list)
	st.list = append(st.list, s)
}

// get returns the Stat of impl and metric; a metric never extracted for
// impl comes back unknown (Runs 0).
func (st *stats) get(impl, metric string) Stat {
	if i, ok := st.index[[2]string{impl, metric}]; ok {
		return st.list[i]
	}
	return Stat{Impl: impl, Metric: metric, Runs: st.nruns[impl]}
}

// fromRuns summarises the per-run metric values of one part. runs holds one
// map per run of one implementation (metric → value; a metric absent from a
// run's map is unknown in that run). Metrics named prefix+key that came from
// a map in the report (closes by reason) are zero, not unknown, in a run whose
// report had the map but not that key: present[i] lists such prefixes per run.
func fromRuns(impl string, units map[string]string, runs []map[string]float64, present []map[string]bool) []Stat {
	names := map[string]bool{}
	for _, r := range runs {
		for k := range r {
			names[k] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	var out []Stat
	for _, name := range sorted {
		vals := make([]*float64, len(runs))
		for i, r := range runs {
			if v, ok := r[name]; ok {
				vals[i] = &v
				continue
			}
			if i < len(present) {
				for prefix := range present[i] {
					if strings.HasPrefix(name, prefix) {
						zero := 0.0
						vals[i] = &zero
					}
				}
			}
		}
		out = append(out, summarise(impl, name, unitOf(units, name), vals))
	}
	return out
}

// unitOf finds a metric's unit; by-reason metrics share their prefix's unit.
func unitOf(units map[string]string, name string) string {
	if u, ok := units[name]; ok {
		return u
	}
	for prefix, u := range units {
		if strings.HasSuffix(prefix, ".") && strings.HasPrefix(name, prefix) {
			return u
		}
	}
	return ""
}

// writeCSV writes one row per implementation and metric: the runs, how many
// reported it, and min/median/max ("?" when no run reported it).
func writeCSV(path string, st *stats) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"impl", "metric", "unit", "runs", "known", "min", "median", "max"})
	num := func(v float64, ok bool) string {
		if !ok {
			return "?"
		}
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	for _, s := range st.list {
		_ = w.Write([]string{s.Impl, s.Metric, s.Unit, strconv.Itoa(s.Runs), strconv.Itoa(s.Known),
			num(s.Min, s.ok()), num(s.Median, s.ok()), num(s.Max, s.ok())})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cell renders a Stat for a table: "median (min–max)", one number when all
// runs agree, "?" when no run reported it, and a note when only some did.
func cell(s Stat, format func(float64) string) string {
	if !s.ok() {
		return "?"
	}
	txt := format(s.Median)
	if lo, hi := format(s.Min), format(s.Max); lo != hi {
		sep := "–"
		if s.Min < 0 {
			sep = " to " // "-0.47–-0.24" would be hard to read
		}
		txt += " (" + lo + sep + hi + ")"
	}
	if !s.complete() {
		txt += fmt.Sprintf(" [%d of %d runs]", s.Known, s.Runs)
	}
	return txt
}
