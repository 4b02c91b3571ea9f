package latency

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mkrt/mkrt/rtkernel/executive"
)

// PageFaults are one mkrt round's page faults after its warm-up (its first
// tenth, at most a second), up to the last reading before the task threads
// ended (read every 20 ms): the measurement threads' own (/proc/self/task/TID/stat) and the
// whole process's (getrusage RUSAGE_SELF), over the same span.
type PageFaults struct {
	Round int `json:"round"`
	// Measured is false when the span could not be read: the round was too
	// short, or there is no /proc.
	Measured bool    `json:"measured"`
	SpanS    float64 `json:"span_s"`
	RTMinor  uint64  `json:"rt_threads_minor"`
	RTMajor  uint64  `json:"rt_threads_major"`
	ProcMin  uint64  `json:"process_minor"`
	ProcMaj  uint64  `json:"process_major"`
}

// faults are page-fault counts of a thread or the process.
type faults struct{ minor, major uint64 }

// faultSample is one reading of every task thread and the process.
type faultSample struct {
	at      time.Time
	threads faults // summed over the task threads
	process faults
}

// faultWatch reads a round's page faults from a general goroutine (never
// from a task's cycle): the baseline once every task has run its warm-up
// cycles, then every faultPoll until the round ends, keeping the last
// complete reading (a thread's /proc entry goes when it ends).
type faultWatch struct {
	warmup uint64 // cycles
	mu     sync.Mutex
	first  *faultSample
	last   *faultSample
}

// faultPoll is how often a round's fault counts are read.
const faultPoll = 20 * time.Millisecond

// newFaultWatch watches a round of cycles cycles at period: the warm-up is
// its first tenth, at most a second's worth of cycles.
func newFaultWatch(cycles uint64, period time.Duration) *faultWatch {
	return &faultWatch{warmup: max(1, min(cycles/10, uint64(time.Second/period)))}
}

// watch reads the counts until ctx is done.
func (w *faultWatch) watch(ctx context.Context, e *executive.Executive) {
	tick := time.NewTicker(faultPoll)
	defer tick.Stop()
	var r *faultReader
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if r == nil {
			st := e.Status()
			var tids []int
			for _, t := range st.Tasks {
				if t.Cycles < w.warmup || t.TID == 0 {
					break
				}
				tids = append(tids, t.TID)
				if t.RelayTID != 0 {
					tids = append(tids, t.RelayTID) // the relay's second thread
				}
			}
			if len(tids) < len(st.Tasks) {
				continue
			}
			r = newFaultReader(tids)
		}
		s, ok := r.read()
		if !ok {
			return
		}
		w.mu.Lock()
		if w.first == nil {
			w.first = &s
		}
		w.last = &s
		w.mu.Unlock()
	}
}

// result is the round's figures.
func (w *faultWatch) result(round int) PageFaults {
	w.mu.Lock()
	defer w.mu.Unlock()
	pf := PageFaults{Round: round}
	if w.first == nil {
		return pf
	}
	a, b := w.first, w.last
	pf.Measured, pf.SpanS = true, b.at.Sub(a.at).Seconds()
	pf.RTMinor, pf.RTMajor = b.threads.minor-a.threads.minor, b.threads.major-a.threads.major
	pf.ProcMin, pf.ProcMaj = b.process.minor-a.process.minor, b.process.major-a.process.major
	return pf
}

// faulted is true when the round took a page fault of any kind.
func (f PageFaults) faulted() bool {
	return f.RTMinor != 0 || f.RTMajor != 0 || f.ProcMin != 0 || f.ProcMaj != 0
}

func (f PageFaults) counts() string {
	return fmt.Sprintf("rt threads minor %d major %d; process minor %d major %d (over %.1fs)", f.RTMinor, f.RTMajor, f.ProcMin, f.ProcMaj, f.SpanS)
}

// PageFaultLines say a run's page faults after warm-up for people: one
// line of totals over the measured rounds and their span, then one line
// for each round that took a fault, so that a fault is located.
func PageFaultLines(rounds []PageFaults) []string {
	var total PageFaults
	var measured int
	var unmeasured []string
	for _, f := range rounds {
		if !f.Measured {
			unmeasured = append(unmeasured, strconv.Itoa(f.Round))
			continue
		}
		measured++
		total.SpanS += f.SpanS
		total.RTMinor, total.RTMajor = total.RTMinor+f.RTMinor, total.RTMajor+f.RTMajor
		total.ProcMin, total.ProcMaj = total.ProcMin+f.ProcMin, total.ProcMaj+f.ProcMaj
	}
	if measured == 0 {
		return []string{"page faults after warm-up: not measured (the rounds were too short, or no /proc)"}
	}
	line := "page faults after warm-up: " + total.counts()
	if len(rounds) > 1 {
		line = fmt.Sprintf("page faults after warm-up, %d rounds: %s", measured, total.counts())
	}
	if len(unmeasured) > 0 {
		line += "; round " + strings.Join(unmeasured, ", ") + " not measured (too short, or no /proc)"
	}
	lines := []string{line}
	if len(rounds) > 1 {
		for _, f := range rounds {
			if f.Measured && f.faulted() {
				lines = append(lines, fmt.Sprintf("  round %d: %s", f.Round, f.counts()))
			}
		}
	}
	return lines
}
