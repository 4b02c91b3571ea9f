package report

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeRun(t *testing.T, dir string, series []Series) string {
	t.Helper()
	if _, err := Write(dir, testMeta(), series, Options{Formats: []string{"svg"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCompareFlagsInjectedRegression(t *testing.T) {
	root := t.TempDir()
	base := writeRun(t, filepath.Join(root, "base"), testSeries(1, 40*time.Microsecond))
	equal := writeRun(t, filepath.Join(root, "equal"), testSeries(1, 40*time.Microsecond))
	// Same distribution, but one sample in 50 is 30 µs late: p99 and beyond regress.
	worse := testSeries(1, 40*time.Microsecond)
	for i := 0; i < 800; i++ {
		worse[0].Hist.RecordValue(int64(40 * time.Microsecond))
	}
	bad := writeRun(t, filepath.Join(root, "bad"), worse)

	c, err := Compare([]string{base, equal}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Regressed() {
		t.Fatalf("an equal run was flagged: %v", c.Regressions)
	}
	for _, row := range c.Rows {
		for _, r := range row.Ratios {
			if r != 1 {
				t.Fatalf("equal run ratio %v in %+v", r, row)
			}
		}
	}

	c, err = Compare([]string{base, equal, bad}, CompareOptions{Threshold: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Regressed() {
		t.Fatal("the injected regression was not flagged")
	}
	for _, r := range c.Regressions {
		if r.Dir != bad || r.Source != "mkrt" || r.Ratio <= 1.2 {
			t.Errorf("unexpected regression %v", r)
		}
	}
	var p99 bool
	for _, r := range c.Regressions {
		p99 = p99 || r.P == 99
	}
	if !p99 {
		t.Errorf("p99 not flagged: %v", c.Regressions)
	}
	var out bytes.Buffer
	if err := c.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"baseline: " + base, "P99.9 µs", " !", "regression(s) against the baseline", "cyclictest"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	png := filepath.Join(root, "compare.png")
	if err := c.WritePlot(png); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, png)

	// A looser threshold lets the same run through.
	c, _ = Compare([]string{base, bad}, CompareOptions{Threshold: 100})
	if c.Regressed() {
		t.Fatalf("threshold 10000%% still flags: %v", c.Regressions)
	}
}

func TestCompareTinyChangesAreNotRegressions(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, us int64) string {
		h := synthetic(1, 0, time.Microsecond, 0, time.Microsecond)
		h.RecordValues(us, 1000)
		return writeRun(t, filepath.Join(root, name), []Series{{Label: "x", Source: "mkrt", Hist: h}})
	}
	c, err := Compare([]string{mk("a", 2), mk("b", 3)}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Regressed() {
		t.Fatalf("2 -> 3 µs (one bucket) flagged: %v", c.Regressions)
	}
	c, _ = Compare([]string{filepath.Join(root, "a"), filepath.Join(root, "b")}, CompareOptions{MinDelta: -1})
	if !c.Regressed() {
		t.Fatal("with no minimum delta, +50% is a regression")
	}
}

func TestCompareWithoutHistogramsAndMissingSources(t *testing.T) {
	root := t.TempDir()
	a := writeRun(t, filepath.Join(root, "a"), testSeries(1, 0))
	b := writeRun(t, filepath.Join(root, "b"), testSeries(2, 0)[:2]) // no cyclictest
	c, err := Compare([]string{a, b}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	absent := false
	for _, row := range c.Rows {
		absent = absent || (!row.Present && row.Source == "cyclictest")
	}
	if !absent {
		t.Fatal("missing source not shown as absent")
	}
	// Summaries without histograms plot from their percentiles.
	for _, r := range c.Runs {
		for i := range r.Totals {
			r.Totals[i].Histogram = ""
		}
	}
	if err := c.WritePlot(filepath.Join(root, "c.svg")); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, filepath.Join(root, "c.svg"))
	if _, err := Compare(nil, CompareOptions{}); !errors.Is(err, ErrNoRuns) {
		t.Fatal(err)
	}
	if _, err := Compare([]string{filepath.Join(root, "nope")}, CompareOptions{}); err == nil {
		t.Fatal("missing run folder accepted")
	}
}

func TestParseThreshold(t *testing.T) {
	for in, want := range map[string]float64{"20%": 0.2, "0.2": 0.2, " 5% ": 0.05, "0": 0} {
		got, err := ParseThreshold(in)
		if err != nil || got != want {
			t.Errorf("%q = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x%", "-5%", "NaN", "Inf"} {
		if _, err := ParseThreshold(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
