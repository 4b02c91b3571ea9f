package main

import (
	"fmt"
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
			"With --vs-cyclictest, cyclictest runs with the same CPUs, priority and\n" +
			"interval in alternating blocks of the same run, and both are printed side\n" +
			"by side with ratios. Needs root for SCHED_FIFO; otherwise the run is\n" +
			"degraded and says so.",
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&cpus, "cpus", "0", "CPUs to measure, as a cpulist (\"0,1\", \"2-3\")")
	cmd.Flags().BoolVarP(&all, "all-cpus", "a", false, "measure every online CPU")
	cmd.Flags().IntVarP(&o.Priority, "priority", "p", latency.DefaultPriority, "SCHED_FIFO priority, 1-99")
	cmd.Flags().DurationVarP(&o.Interval, "interval", "i", latency.DefaultInterval, "wake-up period (whole µs)")
	cmd.Flags().DurationVarP(&o.Duration, "duration", "D", latency.DefaultDuration, "mkrt measuring time (cyclictest gets as much again); ignored with --loops")
	cmd.Flags().Uint64VarP(&o.Loops, "loops", "l", 0, "cycles per thread instead of --duration")
	cmd.Flags().BoolVar(&o.VsCyclictest, "vs-cyclictest", false, "also run cyclictest (rt-tests) in alternating blocks and compare")
	cmd.Flags().IntVar(&o.Blocks, "blocks", 0, "alternating blocks (default 10 with --vs-cyclictest, else 1)")
	cmd.Flags().IntVar(&o.MaxUS, "histogram", latency.DefaultMaxUS, "1 µs buckets of the histograms (cyclictest -h)")
	cmd.Flags().StringVar(&o.OutDir, "out", "", "write mkrt.hlog, histogram.txt, cyclictest.txt and summary.json to DIR")
	cmd.Flags().StringVar(&board, "board", "", "reference board: its partition cores are measured (unless --cpus) and its budget judges the report")
	cmd.Flags().StringVar(&loadName, "load", "idle", "background load during the run: idle, cpu, memory, io or network (stress-ng, loopback flood)")
	rep := addLatencyReportFlags(cmd)
	var isolate bool
	cmd.Flags().BoolVar(&isolate, "isolate", false, "keep every other process off the measured CPUs for the run, as an isolated partition does (cgroup v1 cpuset shield; mkrt, cyclictest and --load stay where they are)")
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
			meta, err := latencyReportMeta(os.DirFS("/"), board, loadDesc(kind, bg))
			if err != nil {
				return err
			}
			meta.Duration, meta.Interval, meta.Priority, meta.CPUs, meta.Started = res.End.Sub(res.Start), res.Options.Interval, res.Options.Priority, res.Options.CPUs, res.Start
			meta.RT = res.RT.String()
			if _, err := report.Write(rep.Dir, meta, latencySeries(res), rep.options()); err != nil {
				return fmt.Errorf("latency run: report: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "report:", rep.Dir)
		}
		return nil
	}
	return cmd
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
