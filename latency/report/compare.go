package report

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// CompareOptions shape a comparison. The zero value compares p50, p99,
// p99.9 and max with a 20% threshold.
type CompareOptions struct {
	// Threshold is the relative increase over the baseline that counts as a
	// regression: 0.2 is 20%. Default 0.2.
	Threshold float64
	// MinDelta is the smallest absolute increase that counts, so a 2 µs
	// median becoming 3 µs (+50%, one histogram bucket) is not a regression.
	// Default 2 µs; negative means none.
	MinDelta time.Duration
	// Percentiles to compare; 100 is the maximum. Default 50, 99, 99.9, 100.
	Percentiles []float64
}

// ErrNoRuns is returned (wrapped) when Compare gets fewer than one run.
var ErrNoRuns = errors.New("no runs to compare")

// Comparison is several runs side by side against the first (the baseline).
type Comparison struct {
	Dirs        []string
	Runs        []*Summary
	Threshold   float64
	MinDeltaUS  float64
	Percentiles []float64
	// Rows has one row per run and source, grouped by source.
	Rows []CompareRow
	// Regressions lists every percentile above the baseline by more than the threshold.
	Regressions []Regression
}

// CompareRow is one run's figures for one source.
type CompareRow struct {
	Run     int // index into Dirs/Runs; 0 is the baseline
	Dir     string
	Source  string
	Present bool // false: the run has no series of this source
	Samples int64
	// Values are µs per percentile; Ratios are to the baseline (NaN without one).
	Values []float64
	Ratios []float64
}

// Regression is one percentile of one run above the baseline's by more than
// the threshold.
type Regression struct {
	Dir        string
	Source     string
	P          float64
	BaselineUS float64
	US         float64
	Ratio      float64
}

func (r Regression) String() string {
	return fmt.Sprintf("%s: %s %s %s -> %s (%.2fx)", r.Dir, r.Source, pname(r.P), fmtUS(r.BaselineUS), fmtUS(r.US), r.Ratio)
}

// Regressed reports whether any run regressed against the baseline.
func (c *Comparison) Regressed() bool { return len(c.Regressions) > 0 }

// ParseThreshold reads a threshold written "20%" or "0.2".
func ParseThreshold(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("report: threshold %q: want a percentage like 20%% or a fraction like 0.2", s)
	}
	if pct {
		v /= 100
	}
	return v, nil
}

// Compare reads the summary.json of each run folder (the first is the
// baseline) and compares each source's merged figures (Summary.Totals)
// percentile by percentile.
func Compare(dirs []string, opts CompareOptions) (*Comparison, error) {
	if len(dirs) == 0 {
		return nil, fmt.Errorf("report: %w", ErrNoRuns)
	}
	if opts.Threshold <= 0 {
		opts.Threshold = 0.2
	}
	if opts.MinDelta == 0 {
		opts.MinDelta = 2 * time.Microsecond
	}
	if len(opts.Percentiles) == 0 {
		opts.Percentiles = []float64{50, 99, 99.9, 100}
	}
	c := &Comparison{Dirs: dirs, Threshold: opts.Threshold, MinDeltaUS: math.Max(0, usOf(opts.MinDelta)), Percentiles: opts.Percentiles}
	for _, d := range dirs {
		s, err := ReadSummary(d)
		if err != nil {
			return nil, err
		}
		c.Runs = append(c.Runs, s)
	}
	// Sources in order of first appearance over all runs, baseline first.
	var srcs []string
	seen := map[string]bool{}
	for _, r := range c.Runs {
		for _, t := range r.Totals {
			if !seen[t.Source] {
				seen[t.Source] = true
				srcs = append(srcs, t.Source)
			}
		}
	}
	for _, src := range srcs {
		base, hasBase := total(c.Runs[0], src)
		for i, r := range c.Runs {
			t, ok := total(r, src)
			row := CompareRow{Run: i, Dir: dirs[i], Source: src, Present: ok, Samples: t.Samples}
			for _, p := range opts.Percentiles {
				v, vok := t.At(p)
				if !ok || !vok {
					v = math.NaN()
				}
				b, bok := base.At(p)
				ratio := math.NaN()
				if hasBase && bok && b > 0 && !math.IsNaN(v) {
					ratio = v / b
				}
				row.Values = append(row.Values, v)
				row.Ratios = append(row.Ratios, ratio)
				if i > 0 && hasBase && bok && !math.IsNaN(v) && v > b*(1+opts.Threshold) && v-b > c.MinDeltaUS {
					c.Regressions = append(c.Regressions, Regression{Dir: dirs[i], Source: src, P: p, BaselineUS: b, US: v, Ratio: ratio})
				}
			}
			c.Rows = append(c.Rows, row)
		}
	}
	return c, nil
}

func total(s *Summary, source string) (SeriesSummary, bool) {
	for _, t := range s.Totals {
		if t.Source == source {
			return t, true
		}
	}
	return SeriesSummary{}, false
}

func pname(p float64) string {
	if p >= 100 {
		return "max"
	}
	return "p" + strconv.FormatFloat(p, 'f', -1, 64)
}

// WriteTable prints the runs side by side: per source, one line per run
// with each percentile in µs and its ratio to the baseline; "!" marks a
// regression. The list of regressions follows.
func (c *Comparison) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "baseline: %s; regression: > +%.0f%% and > %s over the baseline\n\n", c.Dirs[0], 100*c.Threshold, fmtUS(c.MinDeltaUS))
	head := "SOURCE\tRUN\tBOARD\tLOAD\tVERDICT\tSAMPLES"
	for _, p := range c.Percentiles {
		head += "\t" + strings.ToUpper(pname(p)) + " µs"
	}
	fmt.Fprintln(tw, head)
	regressed := map[[2]string]bool{}
	for _, r := range c.Regressions {
		regressed[[2]string{r.Dir + "\x00" + r.Source, pname(r.P)}] = true
	}
	for _, row := range c.Rows {
		s := c.Runs[row.Run]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t", row.Source, row.Dir, orDash(s.Board), orDash(s.Load), s.Verdict)
		if !row.Present {
			fmt.Fprintln(tw, "absent")
			continue
		}
		fmt.Fprintf(tw, "%d", row.Samples)
		for i, v := range row.Values {
			cell := num(v)
			if math.IsNaN(v) {
				cell = "-"
			} else if row.Run > 0 && !math.IsNaN(row.Ratios[i]) {
				cell += fmt.Sprintf(" (%.2fx)", row.Ratios[i])
				if regressed[[2]string{row.Dir + "\x00" + row.Source, pname(c.Percentiles[i])}] {
					cell += " !"
				}
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	if len(c.Regressions) == 0 {
		b.WriteString("\nno regression against the baseline\n")
	} else {
		fmt.Fprintf(&b, "\n%d regression(s) against the baseline:\n", len(c.Regressions))
		for _, r := range c.Regressions {
			b.WriteString("  " + r.String() + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// runName is the short name of run i in legends: the folder's base name,
// or the whole path when two runs share a base name.
func (c *Comparison) runName(i int) string {
	base := filepath.Base(filepath.Clean(c.Dirs[i]))
	for j, d := range c.Dirs {
		if j != i && filepath.Base(filepath.Clean(d)) == base {
			return c.Dirs[i]
		}
	}
	return base
}

// Plot overlays the runs' percentile distributions, one line per run and
// source (merged threads). Runs whose summary carries histograms are drawn
// in full; others from their listed percentiles.
func (c *Comparison) Plot() (*plot.Plot, error) {
	var curves []curve
	for i, s := range c.Runs {
		for j, t := range s.Totals {
			var xys plotter.XYs
			if ser, err := t.Decode(); err == nil {
				xys = percentileXYs(ser)
			} else {
				xys = summaryXYs(t)
			}
			st := draw.LineStyle{Color: plotutil.Color(i), Width: vg.Points(1.2)}
			if j > 0 {
				st.Dashes = plotutil.Dashes(j)
			}
			curves = append(curves, curve{label: fmt.Sprintf("%s: %s (max %s)", c.runName(i), t.Source, fmtUS(t.MaxUS)), style: st, xys: xys})
		}
	}
	budget := time.Duration(c.Runs[0].BudgetUS * float64(time.Microsecond))
	return percentilePlot(fmt.Sprintf("Comparison against %s (regression threshold %.0f%%)", c.runName(0), 100*c.Threshold), curves, budget)
}

// summaryXYs draws a percentile curve from a summary's listed percentiles.
func summaryXYs(t SeriesSummary) plotter.XYs {
	if t.Samples == 0 {
		return nil
	}
	xys := plotter.XYs{{X: 1, Y: t.MinUS}}
	for _, p := range t.Percentiles {
		if x := 1 / (1 - p.P/100); x < float64(t.Samples) {
			xys = append(xys, plotter.XY{X: x, Y: p.US})
		}
	}
	return append(xys, plotter.XY{X: math.Max(float64(t.Samples), 1.01), Y: t.MaxUS})
}

// WritePlot saves the comparison plot; the format follows file's extension (.svg, .png).
func (c *Comparison) WritePlot(file string) error {
	p, err := c.Plot()
	if err != nil {
		return err
	}
	return savePlot(p, file)
}
