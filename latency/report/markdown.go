package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// writeReadme writes the report folder's README.md; ext is the plot format
// the Markdown embeds.
func writeReadme(w *fileWriter, s *Summary, ext string) error {
	fmt.Fprintf(w, "# Latency run: %s, load %s\n\n", orDash(s.Board), orDash(s.Load))
	fmt.Fprintf(w, "**Verdict: %s** — %s\n\n", strings.ToUpper(string(s.Verdict)), s.VerdictReason)
	w.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "| %s | %s |\n", k, mdEscape(v))
		}
	}
	budget := ""
	if s.BudgetUS > 0 {
		budget = fmtUS(s.BudgetUS)
		if s.BudgetNote != "" {
			budget += " (" + s.BudgetNote + ")"
		}
	}
	row("board", s.Board)
	row("latency budget", budget)
	row("load", s.Load)
	row("kernel", s.Kernel)
	rt := s.RT
	if !s.RTKernel {
		rt = strings.TrimSpace(rt + " (not a PREEMPT_RT kernel)")
	}
	row("real-time", rt)
	if s.DurationS > 0 {
		row("duration", time.Duration(s.DurationS*float64(time.Second)).Round(time.Millisecond).String())
	}
	if s.IntervalUS > 0 {
		row("interval", fmtUS(s.IntervalUS))
	}
	if s.Priority > 0 {
		row("priority", "SCHED_FIFO "+strconv.Itoa(s.Priority))
	}
	if len(s.CPUs) > 0 {
		cs := make([]string, len(s.CPUs))
		for i, c := range s.CPUs {
			cs[i] = strconv.Itoa(c)
		}
		row("cpus", strings.Join(cs, ","))
	}
	if !s.Started.IsZero() {
		row("started", s.Started.UTC().Format(time.RFC3339))
	}
	row("host", s.Host)

	w.WriteString("\n## Percentiles (µs)\n\n| series | samples | min | p50 | p90 | p99 | p99.9 | p99.99 | p99.999 | max | mean | stddev |\n")
	w.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	rows := append(append([]SeriesSummary(nil), s.Series...), s.Totals...)
	for i, ss := range rows {
		label := mdEscape(ss.Label)
		if i >= len(s.Series) {
			if len(s.Series) == 1 {
				break // the total of one series repeats it
			}
			label = "**" + label + "**"
		}
		fmt.Fprintf(w, "| %s | %d | %s |", label, ss.Samples, num(ss.MinUS))
		for _, p := range tablePercentiles[:len(tablePercentiles)-1] {
			v, _ := ss.At(p)
			fmt.Fprintf(w, " %s |", num(v))
		}
		fmt.Fprintf(w, " %s | %s | %s |\n", num(ss.MaxUS), num(ss.MeanUS), num(ss.StdDevUS))
	}
	for _, sec := range s.Sections {
		fmt.Fprintf(w, "\n## %s\n\n%s\n", sec.Title, strings.TrimSpace(sec.Markdown))
	}
	fmt.Fprintf(w, "\n## Plots\n\nLatency histogram (samples per latency, log scale; dashed lines are cyclictest):\n\n![latency histogram](%s.%s)\n\n", HistogramPlot, ext)
	fmt.Fprintf(w, "Latency by percentile (x: 1/(1-p) scale):\n\n![latency by percentile](%s.%s)\n\n", PercentilePlot, ext)
	fmt.Fprintf(w, "## Files\n\n- `%s`: the histogram in cyclictest's `-h` format (1 µs buckets, one column per series)\n", HistogramText)
	fmt.Fprintf(w, "- `%s`: these figures and the histograms (HdrHistogram V2 base64), read by `mkrt latency compare`\n", SummaryFile)
	fmt.Fprintf(w, "- `%s.*`, `%s.*`: the plots (SVG and PNG)\n", HistogramPlot, PercentilePlot)
	return w.Flush()
}

// num prints microseconds for a table cell.
func num(us float64) string {
	if us >= 100 || us == float64(int64(us)) {
		return strconv.FormatFloat(us, 'f', 0, 64)
	}
	return strconv.FormatFloat(us, 'f', 1, 64)
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
