package latency

import (
	"context"
	"sync"
	"time"

	"github.com/mkrt/mkrt/rtkernel/executive"
)

// PageFaults are one mkrt round's page faults after its warm-up (the
// tasks' first interval), up to the last reading before the task threads
// ended: the measurement threads' own (/proc/self/task/TID/stat) and the
// whole process's (getrusage RUSAGE_SELF), over the same span.
type PageFaults struct {
	Round int `json:"round"`
	// Measured is false when the span could not be read: the round ended
	// before its first interval, or /proc is not there.
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

// faultWatch reads a round's page faults from a general goroutine: the
// baseline once every task has finished its first interval, then every
// faultPoll until the round ends, keeping the last complete reading (a
// thread's /proc entry goes when it ends).
type faultWatch struct {
	mu     sync.Mutex
	warm   []bool
	left   int
	warmed chan struct{}
	first  *faultSample
	last   *faultSample
}

// faultPoll is how often a round's fault counts are read after warm-up.
const faultPoll = 20 * time.Millisecond

func newFaultWatch(tasks int) *faultWatch {
	return &faultWatch{warm: make([]bool, tasks), left: tasks, warmed: make(chan struct{})}
}

// warmedUp notes that task finished an interval (OnInterval).
func (w *faultWatch) warmedUp(task int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.warm[task] {
		return
	}
	w.warm[task] = true
	if w.left--; w.left == 0 {
		close(w.warmed)
	}
}

// watch reads the counts until ctx is done.
func (w *faultWatch) watch(ctx context.Context, e *executive.Executive) {
	select {
	case <-ctx.Done():
		return
	case <-w.warmed:
	}
	var tids []int
	for _, t := range e.Status().Tasks {
		tids = append(tids, t.TID)
	}
	r := newFaultReader(tids)
	tick := time.NewTicker(faultPoll)
	defer tick.Stop()
	for {
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
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
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
