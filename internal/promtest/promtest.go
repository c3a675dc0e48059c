// Package promtest reads Prometheus expositions in tests: Parse returns
// every gauge by series, Check runs Prometheus' own linter (promtool).
package promtest

import (
	"os/exec"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// Parse parses the text format with expfmt's parser and returns every
// gauge value by `name{label=value,...}` (labels sorted by name); a
// family that is no gauge is an error of the test.
func Parse(t *testing.T, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, f := range fams {
		if f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %s, want a gauge", name, f.GetType())
		}
		for _, m := range f.GetMetric() {
			out[seriesKey(name, m)] = m.GetGauge().GetValue()
		}
	}
	return out
}

// seriesKey names one series as name{label=value,...}, labels sorted
// (client_golang and the parser keep them sorted by name).
func seriesKey(name string, m *dto.Metric) string {
	var pairs []string
	for _, l := range m.GetLabel() {
		pairs = append(pairs, l.GetName()+"="+l.GetValue())
	}
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// Check runs Prometheus' own linter (promtool check metrics) on the
// exposition; without promtool the test fails under CI and skips
// otherwise (nstest.RequireBinaries).
func Check(t *testing.T, text string) {
	t.Helper()
	nstest.RequireBinaries(t, "promtool")
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, text)
	}
}
