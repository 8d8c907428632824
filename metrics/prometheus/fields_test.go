package prometheus_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/livepoll/livepoll/live"
	livepollprom "github.com/livepoll/livepoll/metrics/prometheus"
)

// fixed is a Source whose Stats are set by the test.
type fixed struct{ stats live.Stats }

func (f fixed) Stats() live.Stats { return f.stats }

// leaf is one number or flag inside live.Stats, addressed by its field index path.
type leaf struct {
	name  string // "Closed.EOF"
	index []int
}

// leaves walks live.Stats and returns every field that is not itself a struct, so that a
// field added to Stats (or to one of its nested structs) is found without editing the test.
func leaves(t reflect.Type, prefix string, index []int) []leaf {
	var out []leaf
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		path := append(slices.Clone(index), i)
		if f.Type.Kind() == reflect.Struct {
			out = append(out, leaves(f.Type, prefix+f.Name+".", path)...)
			continue
		}
		out = append(out, leaf{prefix + f.Name, path})
	}
	return out
}

// set gives one field a value no other field has in the test, and returns the value the
// metric should show.
func set(t *testing.T, st *live.Stats, l leaf) float64 {
	v := reflect.ValueOf(st).Elem().FieldByIndex(l.index)
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
		return 7
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
		return 7
	case reflect.Float32, reflect.Float64:
		v.SetFloat(7.5)
		return 7.5
	case reflect.Bool:
		v.SetBool(true)
		return 1
	}
	t.Fatalf("Stats.%s is a %s: teach this test (and metrics.go) how to export it", l.name, v.Type())
	return 0
}

// sample is one exported series, e.g. `livepoll_sessions_closed_total{reason="eof"}`.
func samples(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			out[seriesName(mf.GetName(), m)] = value(mf, m)
		}
	}
	return out
}

func seriesName(name string, m *dto.Metric) string {
	var labels []string
	for _, lp := range m.GetLabel() {
		labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
	}
	if len(labels) == 0 {
		return name
	}
	return name + "{" + strings.Join(labels, ",") + "}"
}

func value(mf *dto.MetricFamily, m *dto.Metric) float64 {
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// TestEveryField sets one Stats field at a time and checks that exactly one series shows
// it, that no two fields share a series, and that no series reads no field. A field added
// to live.Stats without an entry in metrics.go fails here.
func TestEveryField(t *testing.T) {
	fields := leaves(reflect.TypeFor[live.Stats](), "", nil)
	all := samples(t, livepollprom.New(fixed{}, livepollprom.Options{}))
	owner := make(map[string]string) // series -> the field it shows
	for _, l := range fields {
		var st live.Stats
		want := set(t, &st, l)
		var shown []string
		for name, v := range samples(t, livepollprom.New(fixed{st}, livepollprom.Options{})) {
			if v == 0 {
				continue
			}
			shown = append(shown, name)
			if v != want {
				t.Errorf("Stats.%s = %v shows as %s = %v", l.name, want, name, v)
			}
		}
		switch len(shown) {
		case 0:
			t.Errorf("Stats.%s is not exported: add it to metrics.go", l.name)
		case 1:
			if prev, ok := owner[shown[0]]; ok {
				t.Errorf("Stats.%s and Stats.%s both show as %s", prev, l.name, shown[0])
			}
			owner[shown[0]] = l.name
		default:
			slices.Sort(shown)
			t.Errorf("Stats.%s shows in %d series: %v", l.name, len(shown), shown)
		}
	}
	for name := range all {
		if _, ok := owner[name]; !ok {
			t.Errorf("%s shows no Stats field", name)
		}
	}
	if len(fields) < 25 {
		t.Errorf("found %d Stats fields: the walk is broken", len(fields))
	}
}

// TestLint runs client_golang's metric linter (naming, units, _total suffixes, help texts).
func TestLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(livepollprom.New(fixed{}, livepollprom.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestConstLabels registers two servers' collectors in one registry, told apart by a label.
func TestConstLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for i, name := range []string{"chat", "feed"} {
		var st live.Stats
		st.Sessions = i + 1
		c := livepollprom.New(fixed{st}, livepollprom.Options{ConstLabels: prometheus.Labels{"server": name}})
		if err := reg.Register(c); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]float64)
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if !slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool { return lp.GetName() == "server" }) {
				t.Errorf("%s has no server label", seriesName(mf.GetName(), m))
			}
			got[seriesName(mf.GetName(), m)] = value(mf, m)
		}
	}
	for name, want := range map[string]float64{`livepoll_sessions{server="chat"}`: 1, `livepoll_sessions{server="feed"}`: 2} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}
