package latency

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
)

// Ladder is the periods FindMinPeriod steps down, longest first.
var Ladder = []time.Duration{
	time.Millisecond, 500 * time.Microsecond, 250 * time.Microsecond, 200 * time.Microsecond,
	150 * time.Microsecond, 100 * time.Microsecond, 75 * time.Microsecond, 50 * time.Microsecond,
	40 * time.Microsecond, 30 * time.Microsecond, 20 * time.Microsecond,
}

// MinPeriodJSON is the file WriteMinPeriod writes.
const MinPeriodJSON = "min-period.json"

// MinPeriodStep is one period of the ladder and how it went.
type MinPeriodStep struct {
	PeriodUS float64 `json:"period_us"`
	// Wake is mkrt's wake-up latency, all threads merged.
	Wake       Stats   `json:"wake"`
	ExecP999US float64 `json:"exec_p99_9_us"`
	ExecMaxUS  float64 `json:"exec_max_us"`
	Overruns   uint64  `json:"overruns"`
	// CyclictestP999US is cyclictest's p99.9 at the same period (with
	// VsCyclictest).
	CyclictestP999US *float64 `json:"cyclictest_p99_9_us,omitempty"`
	Pass             bool     `json:"pass"`
	Why              string   `json:"why"`
}

// MinPeriod is the outcome of FindMinPeriod.
type MinPeriod struct {
	BudgetUS float64 `json:"budget_us"`
	// NominalUS is the board's nominal min_period; 0 without a board.
	NominalUS float64         `json:"nominal_us,omitempty"`
	Board     string          `json:"board,omitempty"`
	Blocks    int             `json:"blocks"`
	CPUs      []int           `json:"cpus"`
	StepS     float64         `json:"step_duration_s"`
	Steps     []MinPeriodStep `json:"steps"`
	// MinPeriodUS is the last step that passed; 0 when none did.
	MinPeriodUS float64 `json:"min_period_us"`
	// Result says it in words, against the nominal figure.
	Result string `json:"result"`
}

// Measure runs one measurement (Run, or a fake in tests).
type Measure func(context.Context, Options) (*Result, error)

// FindMinPeriod steps the period down Ladder, starting at the first step at
// or below 4× nominal (1 ms when nominal is 0), measuring each with o at
// that interval. A step passes when its p99.9 wake-up latency is within
// budget, no more than 0.1% of its cycles overran, and its p99.9 wake-up
// plus p99.9 execution time fits the period. The ladder stops at the first
// step whose p99.9 execution time alone fills the period (no shorter period
// can hold the program), or after two failed steps in a row: a step can
// fail and a shorter one pass, because a machine's rare stalls make a
// larger share of the cycles late at a long period than at a short one. The minimum period is the
// shortest step that passed. On a measurement error it returns the steps
// so far with the error.
func FindMinPeriod(ctx context.Context, o Options, budget, nominal time.Duration, measure Measure) (*MinPeriod, error) {
	if budget <= 0 {
		return nil, fmt.Errorf("%w: min period: a latency budget is needed", ErrOptions)
	}
	mp := &MinPeriod{BudgetUS: us(budget), NominalUS: us(nominal), CPUs: o.CPUs, StepS: o.Duration.Seconds(),
		Blocks: synth.Groups(o.Blocks) * synth.GroupSize}
	for _, period := range ladderFrom(nominal) {
		so := o
		so.Interval, so.OutDir, so.GoTrace = period, "", ""
		res, err := measure(ctx, so)
		if err != nil {
			mp.Result = describeMinPeriod(mp)
			return mp, fmt.Errorf("latency: min period: step %v: %w", period, err)
		}
		st := judgeStep(period, budget, res.Summary)
		mp.Steps = append(mp.Steps, st)
		mp.CPUs, mp.Blocks = res.Summary.CPUs, res.Summary.Blocks
		if st.Pass {
			mp.MinPeriodUS = st.PeriodUS
			continue
		}
		n := len(mp.Steps)
		if st.ExecP999US >= st.PeriodUS || (n >= 2 && !mp.Steps[n-2].Pass) {
			break
		}
	}
	mp.Result = describeMinPeriod(mp)
	return mp, nil
}

// ladderFrom is the ladder from the first step at or below 4× nominal.
func ladderFrom(nominal time.Duration) []time.Duration {
	if nominal <= 0 {
		return Ladder
	}
	for i, p := range Ladder {
		if p <= 4*nominal {
			return Ladder[i:]
		}
	}
	return Ladder[len(Ladder)-1:]
}

// judgeStep applies the stop rules to one step's summary.
func judgeStep(period, budget time.Duration, s Summary) MinPeriodStep {
	st := MinPeriodStep{PeriodUS: us(period), Wake: s.Mkrt.Merged, ExecP999US: s.MkrtExec.Merged.P999US,
		ExecMaxUS: s.MkrtExec.Merged.MaxUS, Overruns: s.Mkrt.Merged.Overruns}
	if s.Cyclictest != nil {
		v := s.Cyclictest.Merged.P999US
		st.CyclictestP999US = &v
	}
	var why []string
	// Overruns fail a step when more than the tail p99.9 allows overran: a
	// rare stall of the machine (cyclictest sees them too) is judged by
	// the p99.9 rules below, not by a single late cycle.
	if st.Overruns > 0 && st.Overruns*1000 > uint64(max(st.Wake.Samples, 0)) {
		why = append(why, fmt.Sprintf("%d overruns (over 0.1%% of %d cycles)", st.Overruns, st.Wake.Samples))
	}
	if st.Wake.P999US > us(budget) {
		why = append(why, fmt.Sprintf("p99.9 wake %s > budget %s", fmtUS(st.Wake.P999US), fmtUS(us(budget))))
	}
	if sum := st.Wake.P999US + st.ExecP999US; sum > st.PeriodUS {
		why = append(why, fmt.Sprintf("p99.9 wake + exec %s > period", fmtUS(sum)))
	}
	st.Pass = len(why) == 0
	if st.Pass {
		why = append(why, fmt.Sprintf("p99.9 wake ≤ budget, wake + exec %s ≤ period", fmtUS(st.Wake.P999US+st.ExecP999US)))
	}
	st.Why = strings.Join(why, "; ")
	return st
}

// describeMinPeriod is the result in words.
func describeMinPeriod(mp *MinPeriod) string {
	var s string
	switch {
	case mp.MinPeriodUS == 0 && len(mp.Steps) == 0:
		return "not measured"
	case mp.MinPeriodUS == 0:
		s = fmt.Sprintf("holds no period of the ladder (%s failed: %s)", fmtUS(mp.Steps[0].PeriodUS), mp.Steps[0].Why)
	default:
		s = "holds " + fmtUS(mp.MinPeriodUS)
		if last := mp.Steps[len(mp.Steps)-1]; last.Pass && last.PeriodUS == us(Ladder[len(Ladder)-1]) {
			s += " (the ladder's last step)"
		}
		for _, st := range mp.Steps {
			if !st.Pass && st.PeriodUS > mp.MinPeriodUS {
				s += fmt.Sprintf(" (%s failed: %s)", fmtUS(st.PeriodUS), st.Why)
				break
			}
		}
	}
	if mp.NominalUS == 0 {
		return s
	}
	s += ", nominal " + fmtUS(mp.NominalUS)
	switch {
	case mp.MinPeriodUS == 0 || mp.MinPeriodUS > mp.NominalUS:
		return s + ": worse than nominal"
	case mp.MinPeriodUS < mp.NominalUS:
		return s + ": better than nominal"
	default:
		return s + ": as nominal"
	}
}

// FormatMinPeriod prints every step, the minimum period and the comparison
// with the nominal one.
func FormatMinPeriod(w io.Writer, mp *MinPeriod) {
	fmt.Fprintf(w, "minimum period: budget %s, program %s, CPUs %v, %.1fs per step\n", fmtUS(mp.BudgetUS), ProgramDesc(mp.Blocks), mp.CPUs, mp.StepS)
	fmt.Fprintf(w, "%8s %8s %8s %8s %9s %10s %8s %11s  %s\n", "period", "p50", "p99", "p99.9", "max", "exec99.9", "overruns", "cyclictest", "verdict")
	for _, st := range mp.Steps {
		ct, verdict := st.cells("-", "FAIL")
		fmt.Fprintf(w, "%8s %8.1f %8.1f %8.1f %9.1f %10.1f %8d %11s  %s: %s\n", fmtUS(st.PeriodUS), st.Wake.P50US, st.Wake.P99US,
			st.Wake.P999US, st.Wake.MaxUS, st.ExecP999US, st.Overruns, ct, verdict, st.Why)
	}
	fmt.Fprintln(w, "(µs: mkrt wake-up latency, p99.9 execution time, cyclictest p99.9)")
	fmt.Fprintln(w, "result:", mp.Result)
}

// cells are a step's cyclictest p99.9 (none when not run) and its verdict
// ("pass" or fail) for a table.
func (st MinPeriodStep) cells(none, fail string) (cyclictest, verdict string) {
	cyclictest, verdict = none, "pass"
	if st.CyclictestP999US != nil {
		cyclictest = fmt.Sprintf("%.0f", *st.CyclictestP999US)
	}
	if !st.Pass {
		verdict = fail
	}
	return cyclictest, verdict
}

// WriteMinPeriod writes min-period.json into dir; the table goes into the
// report folder's README.md as MinPeriod.ReportSection.
func WriteMinPeriod(dir string, mp *MinPeriod) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(mp); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, MinPeriodJSON), js.Bytes(), 0o644); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// fmtUS prints microseconds as a duration ("250µs", "1ms", "12.5µs").
func fmtUS(v float64) string {
	return time.Duration(v * float64(time.Microsecond)).Round(100 * time.Nanosecond).String()
}
