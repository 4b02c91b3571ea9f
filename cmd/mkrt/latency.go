package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/boards"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/latency"
	"github.com/mkrt/mkrt/latency/load"
	"github.com/mkrt/mkrt/latency/report"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/supervisor/process"
)

// newLatencyCmd is `mkrt latency`: run, report, compare.
func newLatencyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "latency", Short: "latency measurement runs and reports"}
	cmd.AddCommand(latencyRunCmd(), latencyReportCmd(), latencyCompareCmd())
	return cmd
}

// latencyRunCmd is `mkrt latency run`: a cyclictest-equivalent measurement
// on the executive's own task loop.
func latencyRunCmd() *cobra.Command {
	var o latency.Options
	var cpus, board, loadName string
	var all bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "measure wake-up latency with the executive's task loop (optionally against cyclictest)",
		Long: "Run one SCHED_FIFO measurement thread per CPU through the executive's task\n" +
			"loop (the same thread setup, absolute sleeps and timing code as a control\n" +
			"task) and report wake-up latency: min/avg/p50/p90/p99/p99.9/p99.99/max.\n" +
			"With --blocks N each task runs a synthetic N-block program that publishes\n" +
			"its tags to a shared region every cycle, and its execution time is printed\n" +
			"beside the wake-up latency. Page faults after warm-up are counted per round.\n" +
			"With --vs-cyclictest, cyclictest runs with the same CPUs, priority and\n" +
			"interval in alternating rounds of the same run, and both are printed side\n" +
			"by side with ratios. --find-min-period steps the period down to the\n" +
			"shortest one the machine holds within a latency budget. With --out or\n" +
			"--report, the folder's README.md holds the wake-up table and plots, the\n" +
			"execution time, the page faults and, with --find-min-period, the ladder\n" +
			"(the figures are those of the step at the minimum period). Needs root for\n" +
			"SCHED_FIFO; otherwise the run is degraded and says so.",
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&cpus, "cpus", "0", "CPUs to measure, as a cpulist (\"0,1\", \"2-3\")")
	cmd.Flags().BoolVarP(&all, "all-cpus", "a", false, "measure every online CPU")
	cmd.Flags().IntVarP(&o.Priority, "priority", "p", latency.DefaultPriority, "SCHED_FIFO priority, 1-99")
	cmd.Flags().DurationVarP(&o.Interval, "interval", "i", latency.DefaultInterval, "wake-up period (whole µs)")
	cmd.Flags().DurationVarP(&o.Duration, "duration", "D", latency.DefaultDuration, "mkrt measuring time (cyclictest gets as much again); ignored with --loops")
	cmd.Flags().Uint64VarP(&o.Loops, "loops", "l", 0, "cycles per thread instead of --duration")
	cmd.Flags().BoolVar(&o.VsCyclictest, "vs-cyclictest", false, "also run cyclictest (rt-tests) in alternating rounds and compare")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 0, "alternating rounds of mkrt and cyclictest (default 10 with --vs-cyclictest, else 1)")
	cmd.Flags().IntVar(&o.Blocks, "blocks", 0, "run a synthetic program of N function blocks per task (rounded up to whole control loops of 20), publishing its tags to a shared region each cycle; 0: an empty program")
	cmd.Flags().IntVar(&o.MaxUS, "histogram", latency.DefaultMaxUS, "1 µs buckets of the histograms (cyclictest -h)")
	cmd.Flags().StringVar(&o.GoTrace, "go-trace", "", "write a Go execution trace (go tool trace) of the mkrt rounds to FILE (one FILE-roundN per round with several rounds)")
	cmd.Flags().StringVar(&o.OutDir, "out", "", "write mkrt.hlog, histogram.txt, cyclictest.txt and summary.json to DIR")
	cmd.Flags().StringVar(&board, "board", "", "reference board: its partition cores are measured (unless --cpus) and its budget judges the report")
	cmd.Flags().StringVar(&loadName, "load", "idle", "background load during the run: idle, cpu, memory, io or network (stress-ng, loopback flood)")
	rep := addLatencyReportFlags(cmd)
	var isolate bool
	cmd.Flags().BoolVar(&isolate, "isolate", false, "keep every other process off the measured CPUs for the run, as an isolated partition does (cgroup v1 cpuset shield; mkrt, cyclictest and --load stay where they are)")
	var findMin bool
	var budget time.Duration
	cmd.Flags().BoolVar(&findMin, "find-min-period", false, "step the period down 1ms, 500µs, 250µs … 20µs (from the first step ≤ 4× the board's min_period) with a --duration measurement each (default 5s here) and report the shortest one whose p99.9 wake-up latency is within the budget, without overruns, and whose p99.9 wake-up + execution time fits the period")
	cmd.Flags().DurationVar(&budget, "budget", 0, "latency budget for --find-min-period (default: the --board's budget)")
	var keepPreempt bool
	cmd.Flags().BoolVar(&keepPreempt, "keep-async-preempt", false, "do not restart with GODEBUG=asyncpreemptoff=1")
	_ = cmd.Flags().MarkHidden("keep-async-preempt")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if !keepPreempt && !rt.AsyncPreemptOff() {
			// The runtime reads asyncpreemptoff only at start: restart with it.
			if err := reexecNoPreempt(); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "mkrt: async preemption stays on:", err)
			}
		}
		var err error
		if all {
			o.CPUs = make([]int, runtime.NumCPU())
			for i := range o.CPUs {
				o.CPUs[i] = i
			}
		} else if board != "" && !cmd.Flags().Changed("cpus") {
			b, err := boards.Catalog{Dirs: boards.SearchDirs(os.Getenv)}.Lookup(board)
			if err != nil {
				return err
			}
			o.CPUs = b.PartitionCPUs
		} else if o.CPUs, err = configs.ParseCPUList(cpus); err != nil {
			return err
		}
		kind, err := load.ParseKind(loadName)
		if err != nil {
			return err
		}
		if rep.Dir == "" && o.OutDir != "" {
			rep.Dir = o.OutDir // --out gets the whole report folder
		}
		if !cmd.Flags().Changed("duration") && o.Loops > 0 {
			o.Duration = 0
		}
		var mp *minPeriodRun
		if findMin {
			if mp, err = newMinPeriodRun(board, budget); err != nil {
				return err
			}
			if !cmd.Flags().Changed("duration") {
				o.Duration = 5 * time.Second
			}
		}
		stderr := cmd.ErrOrStderr()
		tty := false
		if f, ok := stderr.(*os.File); ok {
			if st, err := f.Stat(); err == nil {
				tty = st.Mode()&os.ModeCharDevice != 0
			}
		}
		progress, finish := latency.NewProgressPrinter(stderr, tty, 10*time.Second)
		o.Progress = progress
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
		defer stop()
		var bg *load.Load
		if kind != load.Idle {
			if bg, err = load.Start(ctx, kind, load.Options{}); err != nil {
				return fmt.Errorf("latency run: load %s: %w", kind, err)
			}
			fmt.Fprintf(stderr, "mkrt: load %s running (%s)\n", kind, bg)
			defer bg.Stop()
		}
		if isolate {
			s, err := process.Shield(process.OSFS{}, "/sys/fs/cgroup", o.CPUs, os.Getpid())
			if err != nil {
				return fmt.Errorf("latency run --isolate: %w", err)
			}
			fmt.Fprintln(stderr, "mkrt:", s)
			defer func() {
				if err := s.Release(); err != nil {
					fmt.Fprintln(stderr, "mkrt:", err)
				}
			}()
		}
		if mp != nil {
			err := mp.run(ctx, o, stderr)
			finish()
			if mp.result != nil {
				latency.FormatMinPeriod(cmd.OutOrStdout(), mp.result)
			}
			if err != nil {
				return fmt.Errorf("latency run --find-min-period: %w", err)
			}
			if rep.Dir != "" {
				if err := latency.WriteMinPeriod(rep.Dir, mp.result); err != nil {
					return err
				}
				if shown := mp.shown(); shown != nil {
					sec := mp.result.ReportSection(shown.Options.Interval.String())
					if err := writeLatencyReport(rep, board, loadDesc(kind, bg), shown, sec); err != nil {
						return fmt.Errorf("latency run --find-min-period: %w", err)
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), "report:", rep.Dir)
			}
			return nil
		}
		res, err := latency.Run(ctx, o)
		finish()
		if bg != nil {
			_ = bg.Stop()
		}
		if res != nil {
			latency.FormatSummary(cmd.OutOrStdout(), res.Summary)
		}
		if err != nil {
			return fmt.Errorf("latency run: %w", err)
		}
		if rep.Dir != "" {
			if err := writeLatencyReport(rep, board, loadDesc(kind, bg), res); err != nil {
				return fmt.Errorf("latency run: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "report:", rep.Dir)
		}
		return nil
	}
	return cmd
}

// writeLatencyReport writes the report folder of run res into rep.Dir:
// the wake-up figures and plots, and in README.md the run's own sections
// (execution time, page faults) and then extra.
func writeLatencyReport(rep *latencyReportFlags, board, load string, res *latency.Result, extra ...report.Section) error {
	meta, err := latencyReportMeta(os.DirFS("/"), board, load)
	if err != nil {
		return err
	}
	meta.Duration, meta.Interval, meta.Priority, meta.CPUs, meta.Started = res.End.Sub(res.Start), res.Options.Interval, res.Options.Priority, res.Options.CPUs, res.Start
	meta.RT = res.RT.String()
	if meta.Run, err = json.Marshal(res.Summary); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	meta.Sections = append(latency.ReportSections(res.Summary), extra...)
	if _, err := report.Write(rep.Dir, meta, latencySeries(res), rep.options()); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// minPeriodRun is a --find-min-period run: the budget and nominal period
// from the board or the flags, and each step's measurement.
type minPeriodRun struct {
	board           string
	budget, nominal time.Duration
	result          *latency.MinPeriod
	steps           []*latency.Result
}

func newMinPeriodRun(boardName string, budget time.Duration) (*minPeriodRun, error) {
	m := &minPeriodRun{board: boardName, budget: budget}
	if boardName != "" {
		b, err := boards.Catalog{Dirs: boards.SearchDirs(os.Getenv)}.Lookup(boardName)
		if err != nil {
			return nil, err
		}
		m.board, m.nominal = b.Name, b.MinPeriod
		if m.budget == 0 {
			m.budget = b.Budget
		}
	}
	if m.budget <= 0 {
		return nil, errors.New("latency run --find-min-period: no latency budget: give --board NAME (its budget) or --budget D (e.g. --budget 100us)")
	}
	return m, nil
}

// run steps down the ladder, saying each step on log.
func (m *minPeriodRun) run(ctx context.Context, o latency.Options, log io.Writer) error {
	measure := func(ctx context.Context, o latency.Options) (*latency.Result, error) {
		fmt.Fprintf(log, "mkrt: period %v\n", o.Interval)
		res, err := latency.Run(ctx, o)
		if err == nil {
			m.steps = append(m.steps, res)
		}
		return res, err
	}
	var err error
	m.result, err = latency.FindMinPeriod(ctx, o, m.budget, m.nominal, measure)
	if m.result != nil {
		m.result.Board = m.board
	}
	return err
}

// shown is the step the report folder shows: the one at the minimum
// period, or the first when none passed; nil before any step finished.
func (m *minPeriodRun) shown() *latency.Result {
	if len(m.steps) == 0 {
		return nil
	}
	for _, r := range m.steps {
		if m.result != nil && float64(r.Options.Interval)/float64(time.Microsecond) == m.result.MinPeriodUS {
			return r
		}
	}
	return m.steps[0]
}

// latencySeries is a run's histograms as report series.
func latencySeries(res *latency.Result) []report.Series {
	var s []report.Series
	for _, th := range res.Threads {
		s = append(s, report.Series{Label: fmt.Sprintf("mkrt cpu%d", th.CPU), Source: "mkrt", Hist: th.Wake, Unit: time.Nanosecond})
	}
	for i, m := range res.Cyclictest {
		s = append(s, report.Series{Label: fmt.Sprintf("cyclictest cpu%d", res.Options.CPUs[i]), Source: "cyclictest", Hist: m.Histogram(), Unit: time.Microsecond})
	}
	return s
}

// reexecNoPreempt replaces the process with itself under
// GODEBUG=asyncpreemptoff=1; it returns only on failure.
func reexecNoPreempt() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	godebug := "asyncpreemptoff=1"
	if v := os.Getenv("GODEBUG"); v != "" {
		godebug = v + "," + godebug
	}
	env := append(os.Environ(), "GODEBUG="+godebug)
	return syscall.Exec(exe, os.Args, env)
}

// loadDesc names the load for the report.
func loadDesc(k load.Kind, l *load.Load) string {
	if l == nil {
		return string(k)
	}
	return l.String()
}
