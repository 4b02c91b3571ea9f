package rt

import (
	"runtime"
	"time"
)

// Why a real-time task yields.
//
// The Go runtime's system monitor (sysmon) asks a goroutine to give up its
// P once the P has run it for 10 ms (runtime.forcePreemptNS) without a pass
// through the scheduler. A real-time task sleeps with a raw system call (see
// Monotonic.SleepUntil), so to the runtime it never stops running: every
// 10 ms sysmon flags it, and the goroutine takes the flag at the first
// function call after its next wake-up, in the middle of a cycle. For a
// goroutine locked to its thread, being preempted is a hand-off: the thread
// parks, another thread of the process (on a housekeeping CPU) takes the
// goroutine from the run queue and wakes the locked thread again. That costs
// tens of microseconds on an idle machine and milliseconds when the
// housekeeping CPUs are busy — inside the cycle, so the next wake-up is late.
// At a 250 µs period this was one cycle in 40 and put the task's p99 wake-up
// latency at 2x cyclictest's; with sysmon's limit raised in a rebuilt
// runtime the same loop was at 0.99x.
//
// A Yielder makes that pass on the task's terms instead: after a cycle's
// work, at most once every YieldEvery, when the slack before the next
// deadline is larger than what recent yields have cost; and before a sleep
// that would end more than YieldLatest after the last yield, whatever the
// slack (long sleeps are cut into slices with a yield after each), so
// sysmon's limit is never reached. The hand-off then happens in time the
// task would have slept anyway.

// YieldEvery is how often a real-time task passes through the scheduler at
// most; YieldLatest is how long it may go without, short of sysmon's 10 ms.
const (
	YieldEvery  = 5 * time.Millisecond
	YieldLatest = 8 * time.Millisecond
)

// Yielder decides when a task yields and keeps what its yields cost. The
// zero value is ready; Start sets the first reference time. Hot path: no
// allocation, no system call.
type Yielder struct {
	last time.Duration // when the task last went through the scheduler
	// cost is what recent yields took: the largest seen, decaying by an
	// eighth at each yield, so one slow hand-off does not stop yields for
	// long.
	cost time.Duration
	// Count is the number of yields; Max the longest.
	Count uint64
	Max   time.Duration
}

// Start makes now the time of the last pass through the scheduler (the
// task has just been scheduled).
func (y *Yielder) Start(now time.Duration) { y.last = now }

// Due reports whether to yield at now, the end of a cycle whose next
// deadline is next: YieldEvery has passed since the last yield and the
// slack exceeds what recent yields cost.
func (y *Yielder) Due(now, next time.Duration) bool {
	return now-y.last >= YieldEvery && next-now > y.cost
}

// Overdue reports whether waking at wake would leave the task without a
// yield for longer than YieldLatest: it must yield before it sleeps there.
func (y *Yielder) Overdue(wake time.Duration) bool { return wake-y.last > YieldLatest }

// Slice is where an overdue task sleeps to before it yields: YieldEvery
// after the last yield, or now if that has passed.
func (y *Yielder) Slice(now time.Duration) time.Duration { return max(now, y.last+YieldEvery) }

// Cost is what a yield is expected to take: the slack Due asks for.
func (y *Yielder) Cost() time.Duration { return y.cost }

// Yield passes the calling goroutine through the scheduler
// (runtime.Gosched); for a goroutine locked to its thread that is a hand-off
// through another thread. Record it with Yielder.Done.
func Yield() { runtime.Gosched() }

// Done records a yield that began at from and came back at to.
func (y *Yielder) Done(from, to time.Duration) {
	c := to - from
	y.cost = max(c, y.cost-y.cost/8)
	y.Max = max(y.Max, c)
	y.last = to
	y.Count++
}
