package latency_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/latency"
)

// fakeMeasure returns, for each period, the wake-up p99.9, execution p99.9
// and overruns of figures, and records the periods it was asked for.
type fakeMeasure struct {
	figures map[time.Duration][3]float64
	asked   []time.Duration
}

func (f *fakeMeasure) measure(_ context.Context, o latency.Options) (*latency.Result, error) {
	f.asked = append(f.asked, o.Interval)
	v, ok := f.figures[o.Interval]
	if !ok {
		return nil, errors.New("no figures")
	}
	s := latency.Summary{CPUs: o.CPUs, Blocks: o.Blocks}
	s.Mkrt.Merged = latency.Stats{Samples: 1000, P50US: v[0] / 2, P999US: v[0], MaxUS: v[0] * 2, Overruns: uint64(v[2])}
	s.MkrtExec.Merged = latency.Stats{P999US: v[1]}
	return &latency.Result{Summary: s}, nil
}

func TestFindMinPeriodRules(t *testing.T) {
	const ms, us = time.Millisecond, time.Microsecond
	good := [3]float64{10, 5, 0}
	for _, c := range []struct {
		name               string
		nominal            time.Duration
		figures            map[time.Duration][3]float64
		wantFirst, wantMin time.Duration
		wantResult, why    string
	}{
		{"budget", 0, map[time.Duration][3]float64{ms: good, 500 * us: good, 250 * us: {60, 5, 0}, 200 * us: {60, 5, 0}},
			ms, 500 * us, "holds 500µs", "p99.9 wake 60µs > budget 50µs"},
		{"a stall at a long period", 0, map[time.Duration][3]float64{ms: {60, 5, 0}, 500 * us: good, 250 * us: good, 200 * us: {30, 200, 0}},
			ms, 250 * us, "holds 250µs (1ms failed: p99.9 wake 60µs > budget 50µs)", "> period"},
		{"overruns", 250 * us, map[time.Duration][3]float64{ms: good, 500 * us: good, 250 * us: good, 200 * us: {10, 5, 3}, 150 * us: {10, 5, 3}},
			ms, 250 * us, "holds 250µs, nominal 250µs: as nominal", "3 overruns"},
		{"one stall", 250 * us, map[time.Duration][3]float64{ms: good, 500 * us: good, 250 * us: {10, 5, 1}, 200 * us: {10, 5, 2}, 150 * us: {10, 5, 2}},
			ms, 250 * us, "holds 250µs", "2 overruns (over 0.1% of 1000 cycles)"},
		{"wake+exec", 100 * us, map[time.Duration][3]float64{250 * us: good, 200 * us: good, 150 * us: good, 100 * us: good, 75 * us: {30, 46, 0}, 50 * us: {30, 46, 0}},
			250 * us, 100 * us, "holds 100µs, nominal 100µs: as nominal", "p99.9 wake + exec 76µs > period"},
		{"better", 50 * us, map[time.Duration][3]float64{200 * us: good, 150 * us: good, 100 * us: good, 75 * us: good, 50 * us: good, 40 * us: good, 30 * us: {20, 15, 0}, 20 * us: {20, 15, 0}},
			200 * us, 40 * us, "holds 40µs, nominal 50µs: better than nominal", "> period"},
		{"none", 0, map[time.Duration][3]float64{ms: {90, 5, 0}, 500 * us: {90, 5, 0}},
			ms, 0, "holds no period of the ladder", "> budget"},
		{"worse", 100 * us, map[time.Duration][3]float64{250 * us: {90, 5, 0}, 200 * us: {90, 5, 0}},
			250 * us, 0, "nominal 100µs: worse than nominal", "> budget"},
		{"tiny nominal", 2 * us, map[time.Duration][3]float64{20 * us: good},
			20 * us, 20 * us, "holds 20µs (the ladder's last step), nominal 2µs: worse than nominal", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeMeasure{figures: c.figures}
			mp, err := latency.FindMinPeriod(context.Background(), latency.Options{CPUs: []int{1}, Duration: time.Second}, 50*us, c.nominal, f.measure)
			if err != nil {
				t.Fatal(err)
			}
			if f.asked[0] != c.wantFirst {
				t.Errorf("first step %v, want %v", f.asked[0], c.wantFirst)
			}
			if got := time.Duration(mp.MinPeriodUS * float64(us)); got != c.wantMin {
				t.Errorf("min period %v, want %v", got, c.wantMin)
			}
			if !strings.Contains(mp.Result, c.wantResult) {
				t.Errorf("result %q, want %q", mp.Result, c.wantResult)
			}
			last := mp.Steps[len(mp.Steps)-1]
			if c.why != "" && (last.Pass || !strings.Contains(last.Why, c.why)) {
				t.Errorf("last step %+v, want a failure for %q", last, c.why)
			}
			// The ladder goes on after a step that fails but fits its
			// period, and stops at two failures in a row or a step that
			// does not fit.
			for i, st := range mp.Steps[:len(mp.Steps)-1] {
				fits := st.ExecP999US < st.PeriodUS
				if !fits || (!st.Pass && i > 0 && !mp.Steps[i-1].Pass) {
					t.Errorf("went on after step %d: %+v", i, mp.Steps)
				}
			}
		})
	}
}

func TestFindMinPeriodErrors(t *testing.T) {
	f := &fakeMeasure{figures: map[time.Duration][3]float64{time.Millisecond: {10, 5, 0}}}
	mp, err := latency.FindMinPeriod(context.Background(), latency.Options{}, 50*time.Microsecond, 0, f.measure)
	if err == nil || len(mp.Steps) != 1 || mp.MinPeriodUS != 1000 {
		t.Fatalf("a failed measurement: %v, %+v", err, mp)
	}
	if _, err := latency.FindMinPeriod(context.Background(), latency.Options{}, 0, 0, f.measure); !errors.Is(err, latency.ErrOptions) {
		t.Fatalf("no budget: %v", err)
	}
}

func TestWriteMinPeriod(t *testing.T) {
	ct := 12.0
	mp := &latency.MinPeriod{BudgetUS: 50, NominalUS: 250, Blocks: 1000, CPUs: []int{1}, StepS: 5, MinPeriodUS: 500,
		Result: "holds 500µs, nominal 250µs: worse than nominal",
		Steps:  []latency.MinPeriodStep{{PeriodUS: 1000, Pass: true, Why: "ok", CyclictestP999US: &ct}, {PeriodUS: 500, Pass: true}, {PeriodUS: 250, Why: "3 overruns"}}}
	dir := t.TempDir()
	if err := latency.WriteMinPeriod(dir, mp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, latency.MinPeriodJSON)); err != nil {
		t.Fatal(err)
	}
	sec := mp.ReportSection("500µs")
	var out bytes.Buffer
	latency.FormatMinPeriod(&out, mp)
	if sec.Title != "Minimum period" || !strings.Contains(sec.Markdown, "the step at 500µs") || !strings.Contains(sec.Markdown, "| 250µs |") {
		t.Errorf("section:\n%s", sec.Markdown)
	}
	for _, s := range []string{sec.Markdown, out.String()} {
		if !strings.Contains(s, "worse than nominal") || !strings.Contains(s, "3 overruns") || !strings.Contains(s, "12") {
			t.Errorf("missing figures:\n%s", s)
		}
	}
}

// TestFindMinPeriodRuns steps down with real measurements against a lax
// budget on the last CPU this process may use: 1 ms holds on any machine.
// With 200 samples a step's p99.9 is its maximum, so one stall of a noisy
// (virtual) machine fails a step: up to three attempts, each logged.
func TestFindMinPeriodRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("real measurements")
	}
	o := latency.Options{CPUs: []int{runtime.NumCPU() - 1}, Duration: 200 * time.Millisecond, LogInterval: 50 * time.Millisecond}
	for attempt := 1; attempt <= 3; attempt++ {
		mp, err := latency.FindMinPeriod(context.Background(), o, 10*time.Millisecond, 0, latency.Run)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		latency.FormatMinPeriod(&out, mp)
		t.Logf("attempt %d:\n%s", attempt, out.String())
		if mp.MinPeriodUS > 0 && mp.MinPeriodUS <= 1000 {
			return
		}
	}
	t.Fatal("no attempt held 1ms")
}
