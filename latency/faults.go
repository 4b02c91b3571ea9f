package latency

import (
	"context"
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
