package latency

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
)

// NewProgressPrinter returns a Progress callback for a terminal (tty: a
// progress bar and live min/avg/p99/max rewritten in place) or for a log or
// pipe (a plain line at most every every, default 10s). Call the returned
// finish function at the end to end the terminal line.
func NewProgressPrinter(w io.Writer, tty bool, every time.Duration) (progress func(Progress), finish func()) {
	if every <= 0 {
		every = 10 * time.Second
	}
	var mu sync.Mutex
	var last time.Time
	var drawn bool
	progress = func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		line := progressLine(p)
		if tty {
			const width = 24
			n := int(p.Done * width)
			n = max(0, min(width, n))
			fmt.Fprintf(w, "\r\033[K[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(".", width-n), 100*p.Done, line)
			drawn = true
			return
		}
		if now := time.Now(); now.Sub(last) >= every {
			last = now
			fmt.Fprintf(w, "latency: %3.0f%% %s\n", 100*p.Done, line)
		}
	}
	finish = func() {
		mu.Lock()
		defer mu.Unlock()
		if drawn {
			fmt.Fprintln(w)
		}
	}
	return progress, finish
}

func progressLine(p Progress) string {
	s := fmt.Sprintf("%s round %d/%d, %s", p.Phase, p.Round, p.Rounds, p.Elapsed.Truncate(100*time.Millisecond))
	if p.Live != nil {
		st := StatsOf(p.Live)
		s += fmt.Sprintf("  mkrt min %.1fµs avg %.1fµs p99 %.1fµs max %.1fµs (%d samples)", st.MinUS, st.AvgUS, st.P99US, st.MaxUS, st.Samples)
	}
	return s
}

// FormatSummary prints a summary for people: per thread and merged, and
// with cyclictest the two side by side with ratios; then the page faults
// (PageFaultLines) and each thread's yields to the Go scheduler.
func FormatSummary(w io.Writer, s Summary) {
	fmt.Fprintf(w, "%s; interval %dµs, priority %d, CPUs %v, %.1fs\n", s.RT, s.IntervalUS, s.Priority, s.CPUs, s.DurationS)
	fmt.Fprintf(w, "program: %s\n", ProgramDesc(s.Blocks))
	head := fmt.Sprintf("%-16s %9s %8s %8s %8s %8s %8s %8s %8s %9s %8s\n", "", "samples", "min", "avg", "p50", "p90", "p99", "p99.9", "p99.99", "max", "overruns")
	io.WriteString(w, head)
	row := func(name string, st Stats, overruns bool) {
		o := "-" // cyclictest does not count overruns
		if overruns {
			o = fmt.Sprint(st.Overruns)
		}
		fmt.Fprintf(w, "%-16s %9d %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %9.1f %8s\n", name, st.Samples, st.MinUS, st.AvgUS, st.P50US, st.P90US, st.P99US, st.P999US, st.P9999US, st.MaxUS, o)
	}
	side := func(name string, sd *Side, overruns bool) {
		for _, t := range sd.Threads {
			row(fmt.Sprintf("%s cpu%d", name, t.CPU), t.Stats, overruns)
		}
		if len(sd.Threads) > 1 {
			row(name+" all", sd.Merged, overruns)
		}
	}
	side("mkrt", &s.Mkrt, true)
	side("mkrt exec", &s.MkrtExec, false)
	if s.Cyclictest != nil {
		side("cyclictest", s.Cyclictest, false)
		fmt.Fprintln(w, "(µs; comparison with both binned to whole µs as cyclictest counts)")
		fmt.Fprintf(w, "%-8s %10s %12s %8s\n", "", "mkrt", "cyclictest", "ratio")
		for _, r := range s.Comparison {
			fmt.Fprintf(w, "%-8s %10.0f %12.0f %8.2f\n", r.Metric, r.MkrtUS, r.CyclictestUS, r.Ratio)
		}
	} else {
		fmt.Fprintln(w, "(µs; mkrt exec is each cycle's execution time)")
	}
	for _, l := range PageFaultLines(s.PageFaults) {
		fmt.Fprintln(w, l)
	}
	for _, y := range s.Yields {
		fmt.Fprintln(w, y)
	}
}

// String says the yields for people: "cpu1: 1,234 yields in the slack
// (longest 1.3 ms)", and the relays when there were any.
func (y Yields) String() string {
	longest := fmt.Sprintf("%.0f µs", y.MaxYieldUS)
	if y.MaxYieldUS >= 1000 {
		longest = fmt.Sprintf("%.1f ms", y.MaxYieldUS/1000)
	}
	s := fmt.Sprintf("cpu%d: %s yields in the slack (longest %s)", y.CPU, thousands(y.Yields), longest)
	if y.Relays > 0 {
		s += fmt.Sprintf(", %s relays between its two threads", thousands(y.Relays))
	}
	return s
}

// thousands prints n with comma separators: 1,234,567.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ProgramDesc names the measurement tasks' program.
func ProgramDesc(blocks int) string {
	if blocks == 0 {
		return "empty"
	}
	return fmt.Sprintf("%d blocks per task (%d control loops of %d), image published to a shared region every cycle", blocks, synth.Groups(blocks), synth.GroupSize)
}
