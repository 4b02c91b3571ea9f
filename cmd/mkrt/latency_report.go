package main

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/boards"
	"github.com/mkrt/mkrt/latency/report"
)

// latencyReportFlags are the report options a latency run takes:
// --report DIR and --formats.
type latencyReportFlags struct {
	Dir     string
	Formats []string
}

// addLatencyReportFlags registers the report flags on cmd.
func addLatencyReportFlags(cmd *cobra.Command) *latencyReportFlags {
	f := &latencyReportFlags{}
	cmd.Flags().StringVar(&f.Dir, "report", "", "write a report folder (plots, histogram.txt, summary.json, README.md) to DIR")
	cmd.Flags().StringSliceVar(&f.Formats, "formats", []string{"svg", "png"}, "plot formats of the report")
	return f
}

// options turns the flags into report options.
func (f *latencyReportFlags) options() report.Options {
	return report.Options{Formats: f.Formats}
}

// latencyReportMeta fills the board, budget, kernel and real-time status of
// a run's report metadata from the board catalog and the host (root is "/"
// in production).
func latencyReportMeta(root fs.FS, boardName, load string) (report.Meta, error) {
	if boardName == "" {
		boardName = boards.Default
	}
	b, err := boards.Catalog{Dirs: boards.SearchDirs(os.Getenv)}.Lookup(boardName)
	if err != nil {
		return report.Meta{}, err
	}
	m := report.Meta{Board: b.Name, Budget: b.Budget, BudgetNote: "nominal", Load: load, Started: time.Now()}
	if b.BudgetNote != "" {
		m.BudgetNote, _, _ = strings.Cut(b.BudgetNote, ":")
	}
	rel, _ := fs.ReadFile(root, "proc/sys/kernel/osrelease")
	ver, _ := fs.ReadFile(root, "proc/sys/kernel/version")
	m.Kernel = strings.TrimSpace(strings.TrimSpace(string(rel)) + " " + strings.TrimSpace(string(ver)))
	rt, _ := fs.ReadFile(root, "sys/kernel/realtime")
	m.RTKernel = strings.TrimSpace(string(rt)) == "1" || strings.Contains(string(ver), "PREEMPT_RT")
	if m.RTKernel {
		m.RT = "PREEMPT_RT"
	} else {
		m.RT = "not a PREEMPT_RT kernel"
	}
	m.Host, _ = os.Hostname()
	return m, nil
}

// latencyReportCmd is `mkrt latency report DIR [--cyclictest FILE]`: write a
// report folder from a cyclictest histogram, or regenerate one from its
// summary.json.
func latencyReportCmd() *cobra.Command {
	var cyclictest, board, load string
	var formats []string
	cmd := &cobra.Command{
		Use:   "report DIR",
		Short: "write a latency report folder from a cyclictest histogram, or regenerate one from its summary.json",
		Long: "With --cyclictest FILE (the output of cyclictest -h N), write a report folder\n" +
			"DIR for it: plots, histogram.txt, summary.json and README.md with a verdict\n" +
			"against the board's budget. Without it, regenerate DIR's plots and README.md\n" +
			"from DIR/summary.json.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			opts := report.Options{Formats: formats}
			var sum *report.Summary
			if cyclictest == "" {
				var err error
				if sum, err = report.Rewrite(dir, opts); err != nil {
					return err
				}
			} else {
				f, err := os.Open(cyclictest)
				if err != nil {
					return err
				}
				series, err := report.ReadHistogramText(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", cyclictest, err)
				}
				meta, err := latencyReportMeta(os.DirFS("/"), board, load)
				if err != nil {
					return err
				}
				if sum, err = report.Write(dir, meta, series, opts); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: verdict %s: %s\n", dir, sum.Verdict, sum.VerdictReason)
			return nil
		},
	}
	cmd.Flags().StringVar(&cyclictest, "cyclictest", "", "cyclictest -h output to report")
	cmd.Flags().StringVar(&board, "board", boards.Default, "board whose latency budget the verdict uses (name or file)")
	cmd.Flags().StringVar(&load, "load", "", "the load the run was under, as the report should name it")
	cmd.Flags().StringSliceVar(&formats, "formats", []string{"svg", "png"}, "plot formats")
	return cmd
}

// latencyCompareCmd is `mkrt latency compare DIR...`.
func latencyCompareCmd() *cobra.Command {
	var threshold, percentiles, plotFile string
	var minDelta time.Duration
	var failOnRegression bool
	cmd := &cobra.Command{
		Use:   "compare BASELINE-DIR DIR...",
		Short: "compare latency runs side by side against the first (the baseline)",
		Long: "Read each run folder's summary.json and print p50/p99/p99.9/max per run and\n" +
			"source (mkrt, cyclictest) with the ratio to the baseline. A percentile above\n" +
			"the baseline by more than --threshold (and by more than --min-delta) is a\n" +
			"regression, marked '!'. --fail-on-regression makes one exit with status 1.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			th, err := report.ParseThreshold(threshold)
			if err != nil {
				return err
			}
			var ps []float64
			for _, s := range strings.Split(percentiles, ",") {
				p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "p")), 64)
				if err != nil || p <= 0 || p > 100 {
					return fmt.Errorf("--percentiles: %q is not a percentile in (0, 100]", s)
				}
				ps = append(ps, p)
			}
			if minDelta == 0 {
				minDelta = -1 // an explicit 0 means no minimum
			}
			c, err := report.Compare(args, report.CompareOptions{Threshold: th, MinDelta: minDelta, Percentiles: ps})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := c.WriteTable(out); err != nil {
				return err
			}
			if plotFile != "" {
				if err := c.WritePlot(plotFile); err != nil {
					return err
				}
				fmt.Fprintf(out, "overlay plot: %s\n", plotFile)
			}
			if failOnRegression && c.Regressed() {
				return &exitError{code: 1, err: fmt.Errorf("latency compare: %d regression(s) against %s", len(c.Regressions), args[0])}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&threshold, "threshold", "20%", "relative increase over the baseline that is a regression (20% or 0.2)")
	cmd.Flags().DurationVar(&minDelta, "min-delta", 2*time.Microsecond, "smallest absolute increase that is a regression")
	cmd.Flags().StringVar(&percentiles, "percentiles", "50,99,99.9,100", "percentiles to compare; 100 is the maximum")
	cmd.Flags().StringVar(&plotFile, "plot", "latency-compare.png", "overlay plot of the runs' percentile distributions (.png or .svg; empty: none)")
	cmd.Flags().BoolVar(&failOnRegression, "fail-on-regression", false, "exit with status 1 when a run regressed")
	return cmd
}
