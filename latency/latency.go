// Package latency is mkrt's wake-up latency measurement runner, the
// equivalent of cyclictest built on the executive itself: one measurement
// task per CPU, run by rtkernel/executive with an empty program (the
// figures are those of the executive's own thread setup, sleep and timing
// code) or with a synthetic program of Options.Blocks function blocks
// (rtkernel/blocks/synth) that publishes its tag image to a shared-memory
// region every cycle, as a control task does. Optionally it runs cyclictest
// (Debian rt-tests) with the same CPUs, priority and interval in
// alternating rounds of the same run and compares the two. FindMinPeriod
// steps the period down a ladder to the shortest one a board holds.
//
// Run returns a Result with per-thread HdrHistograms (nanoseconds),
// cyclictest's histograms as counts per microsecond and a JSON-ready
// Summary; with Options.OutDir it also writes an HdrHistogram interval log,
// a cyclictest-format histogram text file and summary.json.
//
// Meaningful figures need root (SCHED_FIFO, mlockall, /dev/cpu_dma_latency)
// and ideally a PREEMPT_RT kernel with isolated CPUs; without privileges
// the run is SCHED_OTHER and its Summary says "rt: degraded (…)".
package latency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/rt"
)

// Defaults of Options.
const (
	DefaultPriority = 80
	DefaultInterval = time.Millisecond
	DefaultRounds   = 10
	DefaultMaxUS    = 10000
	DefaultHighest  = time.Second
	DefaultDuration = 10 * time.Second
)

// The files Run writes into Options.OutDir.
const (
	IntervalLogFile = "mkrt.hlog"
	HistogramFile   = "histogram.txt"
	CyclictestFile  = "cyclictest.txt"
	SummaryFile     = "summary.json"
)

// Errors, to be matched with errors.Is.
var (
	ErrOptions       = errors.New("latency: bad options")
	ErrNoCyclictest  = errors.New("latency: cyclictest not found (install Debian package rt-tests)")
	ErrCyclictestRun = errors.New("latency: cyclictest failed")
)

// Options is one measurement run. The zero value measures CPU 0 for 10 s at
// priority 80 with a 1 ms interval.
type Options struct {
	// CPUs gets one measurement thread each; default CPU 0.
	CPUs []int
	// Priority is the SCHED_FIFO priority; default 80.
	Priority int
	// Interval is the wake-up period; default 1ms.
	Interval time.Duration
	// Duration is the mkrt measurement time (cyclictest gets as much again);
	// ignored when Loops is set; default 10s.
	Duration time.Duration
	// Loops is the number of mkrt cycles per thread (cyclictest runs as
	// many).
	Loops uint64
	// VsCyclictest also runs cyclictest, alternating with mkrt in Rounds
	// rounds each.
	VsCyclictest bool
	// Rounds is the number of alternating rounds; default 10 with
	// VsCyclictest, else 1.
	Rounds int
	// Blocks is the size of the synthetic program each measurement task
	// runs, rounded up to whole control loops of synth.GroupSize blocks;
	// 0 runs an empty program.
	Blocks int
	// Cyclictest is the cyclictest binary; default "cyclictest" on PATH.
	Cyclictest string
	// MaxUS is the number of 1 µs histogram buckets (cyclictest -h);
	// default 10000.
	MaxUS int
	// Highest is the largest latency the HdrHistograms track; default 1s.
	Highest time.Duration
	// LogInterval is the length of the intervals in the interval log and of
	// the live progress; default 1s.
	LogInterval time.Duration
	// OutDir, when set, receives the interval log, histogram.txt,
	// cyclictest.txt and summary.json.
	OutDir string
	// Progress receives live figures at every interval, from a general
	// goroutine.
	Progress func(Progress)
	Logger   *slog.Logger
	// KeepGC leaves the garbage collector on during the measurement.
	KeepGC bool
	// GoTrace, when set, receives a Go execution trace (runtime/trace; read
	// with `go tool trace`) of the mkrt rounds from the executive's start
	// (not the program's compilation, nor cyclictest's rounds): this
	// file for one round, else one file per round, named with "-roundN"
	// before the extension. Ignored by FindMinPeriod.
	GoTrace string
}

// Thread is one measurement thread's result.
type Thread struct {
	CPU int
	// Wake is the wake-up latency (actual - scheduled start) in nanoseconds.
	Wake *hdrhistogram.Histogram
	// Exec is the cycle's execution time in nanoseconds.
	Exec *hdrhistogram.Histogram
	// Overruns counts cycles that ended past their deadline.
	Overruns uint64
	// Micros is Wake binned to whole microseconds, as cyclictest counts.
	Micros Micros
	// Yields counts the task's passes through the Go scheduler in its
	// slack, which keep the runtime from preempting it mid-cycle
	// (executive.TaskCounters); MaxYield is the longest. Relays counts the
	// hand-overs between the task's two threads when it runs as a relay.
	Yields   uint64
	MaxYield time.Duration
	Relays   uint64
}

// Result is a finished run. Its fields are stable: reports build on them.
type Result struct {
	Options Options
	Start   time.Time
	End     time.Time
	// RT is the real-time setup the measurement threads got.
	RT rt.Status
	// Threads is one per CPU, in Options.CPUs order.
	Threads []Thread
	// Merged is every thread's Wake histogram merged, MergedExec every
	// thread's Exec.
	Merged, MergedExec *hdrhistogram.Histogram
	// Faults are the page faults of each mkrt round after its warm-up.
	Faults []PageFaults
	// Cyclictest is set with VsCyclictest: one histogram per thread, in
	// Options.CPUs order.
	Cyclictest []Micros
	// CyclictestArgs is the command line of one cyclictest block.
	CyclictestArgs []string
	Summary        Summary
}

// Progress is a live report during a run.
type Progress struct {
	// Done is the fraction of the run completed, 0-1.
	Done float64
	// Elapsed is the wall time since the start.
	Elapsed time.Duration
	// Phase is "mkrt" or "cyclictest"; Round counts from 1 to Rounds.
	Phase         string
	Round, Rounds int
	// Live is mkrt's merged wake-up latency so far (nanoseconds); nil
	// before the first interval.
	Live *hdrhistogram.Histogram
}

func (o *Options) defaults() error {
	if len(o.CPUs) == 0 {
		o.CPUs = []int{0}
	}
	if o.Priority == 0 {
		o.Priority = DefaultPriority
	}
	if o.Priority < 1 || o.Priority > 99 {
		return fmt.Errorf("%w: priority %d is outside 1-99", ErrOptions, o.Priority)
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Interval < 10*time.Microsecond || o.Interval%time.Microsecond != 0 {
		return fmt.Errorf("%w: interval %v must be a whole number of µs, at least 10µs", ErrOptions, o.Interval)
	}
	if o.Loops == 0 && o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Rounds == 0 {
		o.Rounds = 1
		if o.VsCyclictest {
			o.Rounds = DefaultRounds
		}
	}
	if o.Rounds < 1 {
		return fmt.Errorf("%w: rounds %d", ErrOptions, o.Rounds)
	}
	if o.Blocks < 0 {
		return fmt.Errorf("%w: blocks %d", ErrOptions, o.Blocks)
	}
	if o.MaxUS == 0 {
		o.MaxUS = DefaultMaxUS
	}
	if o.Highest == 0 {
		o.Highest = DefaultHighest
	}
	if o.LogInterval == 0 {
		o.LogInterval = time.Second
	}
	if o.Cyclictest == "" {
		o.Cyclictest = "cyclictest"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	seen := map[int]bool{}
	for _, c := range o.CPUs {
		if c < 0 || seen[c] {
			return fmt.Errorf("%w: CPU %d given twice or negative", ErrOptions, c)
		}
		seen[c] = true
	}
	return nil
}

// roundCycles is the number of cycles of one round.
func (o *Options) roundCycles() uint64 {
	total := o.Loops
	if total == 0 {
		total = uint64(o.Duration / o.Interval)
	}
	return max(1, (total+uint64(o.Rounds)-1)/uint64(o.Rounds))
}

// Run measures wake-up latency as Options say. It returns when the run is
// complete or ctx is done (with what was measured so far and ctx's error).
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	res := &Result{Options: o, Start: time.Now(), Merged: hdrhistogram.New(1, int64(o.Highest), 3), MergedExec: hdrhistogram.New(1, int64(o.Highest), 3)}
	for _, c := range o.CPUs {
		res.Threads = append(res.Threads, Thread{CPU: c, Wake: hdrhistogram.New(1, int64(o.Highest), 3), Exec: hdrhistogram.New(1, int64(o.Highest), 3)})
	}
	if o.VsCyclictest {
		path, err := findCyclictest(o.Cyclictest)
		if err != nil {
			return nil, err
		}
		o.Cyclictest = path
		res.CyclictestArgs = cyclictestArgs(o)
	}
	var hlog *intervalLog
	if o.OutDir != "" {
		if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
			return nil, fmt.Errorf("latency: %w", err)
		}
		var err error
		if hlog, err = createIntervalLog(filepath.Join(o.OutDir, IntervalLogFile), res.Start, o.Highest); err != nil {
			return nil, err
		}
		defer hlog.Close()
	}
	live := &liveStats{h: hdrhistogram.New(1, int64(o.Highest), 3)}
	var runErr error
	for r := 1; r <= o.Rounds && runErr == nil; r++ {
		o.Logger.Debug("latency: round", "round", r, "of", o.Rounds)
		runErr = runRound(ctx, o, res, r, hlog, live)
		if runErr == nil && o.VsCyclictest {
			sendProgress(o, res, "cyclictest", r, live)
			runErr = runCyclictest(ctx, o, res)
		}
	}
	res.End = time.Now()
	for i := range res.Threads {
		th := &res.Threads[i]
		th.Micros = MicrosOf(th.Wake, o.MaxUS)
		res.Merged.Merge(th.Wake)
		res.MergedExec.Merge(th.Exec)
	}
	res.Summary = summarize(res)
	if o.OutDir != "" {
		if err := res.WriteFiles(o.OutDir); err != nil && runErr == nil {
			runErr = err
		}
	}
	return res, runErr
}

// liveStats is mkrt's merged histogram for the progress display.
type liveStats struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// sendProgress sends a Progress: phase "mkrt" while a block measures (done from
// the samples so far), "cyclictest" when a cyclictest round starts.
func sendProgress(o Options, res *Result, phase string, round int, live *liveStats) {
	if o.Progress == nil {
		return
	}
	p := Progress{Phase: phase, Round: round, Rounds: o.Rounds, Elapsed: time.Since(res.Start)}
	live.mu.Lock()
	if live.h.TotalCount() > 0 {
		p.Live = live.h.Clone()
	}
	perThread := uint64(live.h.TotalCount()) / uint64(len(o.CPUs))
	live.mu.Unlock()
	sides := 1.0
	if o.VsCyclictest {
		sides = 2
	}
	per := 1 / float64(o.Rounds)
	frac := 1.0
	if phase == "mkrt" {
		inRound := perThread - min(perThread, uint64(round-1)*o.roundCycles())
		frac = min(1, float64(inRound)/float64(o.roundCycles()))
	}
	p.Done = float64(round-1)*per + frac*per/sides
	o.Progress(p)
}

// measurementConfig is the executive config of one round: one task per CPU
// (with Options.Blocks, each with its own control loops of the synthetic
// program), skipping missed periods as cyclictest does, and a watchdog that
// never trips.
func measurementConfig(o Options) *configs.Config {
	cfg := &configs.Config{Watchdog: configs.Watchdog{Overruns: 1 << 30}, Latency: configs.Latency{Highest: configs.Duration(o.Highest)}}
	loops := synth.Groups(o.Blocks)
	for i, c := range o.CPUs {
		cpu := c
		tags, bs := synth.Loops(i*loops, loops)
		cfg.Tags = append(cfg.Tags, tags...)
		cfg.Tasks = append(cfg.Tasks, configs.Task{Name: fmt.Sprintf("cpu%d", c), Period: configs.Duration(o.Interval),
			Priority: o.Priority, CPU: &cpu, Overrun: configs.OverrunSkip, Blocks: bs})
	}
	return cfg
}

// runRound runs one round of the executive's measurement tasks.
func runRound(ctx context.Context, o Options, res *Result, round int, hlog *intervalLog, live *liveStats) (err error) {
	cfg := measurementConfig(o)
	tab, err := cfg.TagTable()
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	prog, err := newProgram(ctx, o, cfg, tab)
	if err != nil {
		return err
	}
	defer prog.Close()
	faults := newFaultWatch(o.roundCycles(), o.Interval)
	opts := executive.Options{Logger: o.Logger, Cycles: o.roundCycles(), Interval: o.LogInterval, KeepGC: o.KeepGC,
		StartDelay: 20 * time.Millisecond,
		OnInterval: func(task int, wake, _ *hdrhistogram.Histogram) {
			if hlog != nil {
				hlog.write(res.Threads[task].CPU, wake, o.Logger)
			}
			live.mu.Lock()
			live.h.Merge(wake)
			live.mu.Unlock()
			if task == len(o.CPUs)-1 {
				sendProgress(o, res, "mkrt", round, live)
			}
		}}
	e, err := executive.New(cfg, tab, prog.programs, prog.io, prog.ch, opts)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	rctx := ctx
	if o.Loops == 0 {
		// Bounded by the cycle count; the timeout is a safety net for a
		// starved thread.
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, 2*time.Duration(o.roundCycles())*o.Interval+10*time.Second)
		defer cancel()
	}
	if o.GoTrace != "" {
		// From the executive's start: the program's compilation before it
		// is the general side's.
		stopTrace, err := startGoTrace(goTraceFile(o, round))
		if err != nil {
			return err
		}
		defer func() {
			if serr := stopTrace(); serr != nil && err == nil {
				err = serr
			}
		}()
	}
	watchCtx, stopWatch := context.WithCancel(rctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		faults.watch(watchCtx, e)
	}()
	runErr := e.Run(rctx)
	stopWatch()
	<-watched
	res.Faults = append(res.Faults, faults.result(round))
	st := e.Status()
	res.RT.Merge(st.RT)
	for i, h := range e.Histograms() {
		res.Threads[i].Wake.Merge(h.Wake)
		res.Threads[i].Exec.Merge(h.Exec)
		th, c := &res.Threads[i], st.Tasks[i].TaskCounters
		th.Overruns += c.Overruns
		th.Yields += c.Yields
		th.Relays += c.Relays
		th.MaxYield = max(th.MaxYield, c.MaxYield)
	}
	if runErr != nil {
		return fmt.Errorf("latency: round %d: %w", round, runErr)
	}
	return ctx.Err()
}
