package executive

import (
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// histPair is one interval's wake-up latency and execution time histograms.
type histPair struct {
	wake, exec *hdrhistogram.Histogram
	// start and end are the interval's bounds on the monotonic clock.
	start, end time.Duration
}

func newHistPair(highest int64, digits int) *histPair {
	return &histPair{wake: hdrhistogram.New(1, highest, digits), exec: hdrhistogram.New(1, highest, digits)}
}

// recorder hands interval histograms from a task's thread to the collector
// without locks: the task records into cur and, once an interval has passed
// and the collector has returned a spare, publishes cur through ready and
// continues in the spare. With the collector late, the task keeps recording
// into cur (the interval grows); nothing is lost.
type recorder struct {
	cur      *histPair // owned by the task thread
	ready    atomic.Pointer[histPair]
	spare    atomic.Pointer[histPair]
	interval time.Duration
	nextSwap time.Duration
	highest  int64
}

func newRecorder(highest int64, digits int, interval time.Duration) *recorder {
	r := &recorder{cur: newHistPair(highest, digits), interval: interval, highest: highest}
	r.spare.Store(newHistPair(highest, digits))
	return r
}

// begin starts the first interval at now.
func (r *recorder) begin(now time.Duration) {
	r.cur.start = now
	r.nextSwap = now + r.interval
}

// record adds one cycle's timing. Hot path: allocation-free (values are
// clamped into the histogram's range, so RecordValue never builds an error).
func (r *recorder) record(wake, exec, now time.Duration) {
	_ = r.cur.wake.RecordValue(r.clamp(wake))
	_ = r.cur.exec.RecordValue(r.clamp(exec))
	if now >= r.nextSwap {
		if sp := r.spare.Swap(nil); sp != nil {
			r.cur.end = now
			r.ready.Store(r.cur)
			sp.start = now
			r.cur = sp
		}
		r.nextSwap = now + r.interval
	}
}

func (r *recorder) clamp(d time.Duration) int64 {
	v := int64(d)
	if v < 1 {
		return 1
	}
	if v > r.highest {
		return r.highest
	}
	return v
}

// take returns a finished interval, or nil. Collector side.
func (r *recorder) take() *histPair { return r.ready.Swap(nil) }

// give returns a consumed interval to the task. Collector side.
func (r *recorder) give(p *histPair) {
	p.wake.Reset()
	p.exec.Reset()
	r.spare.Store(p)
}

// final returns the interval the task was recording into when it ended.
// Call only after the task's thread has finished.
func (r *recorder) final(now time.Duration) *histPair {
	r.cur.end = now
	return r.cur
}
