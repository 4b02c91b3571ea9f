package executive

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm/wire"
)

// A fast task runs on two threads that take turns (a relay), so that the
// thread running its cycles never has to go through the Go scheduler.
//
// The Go runtime preempts a goroutine that has run for 10 ms without a pass
// through the scheduler (see rt.Yielder), and for a goroutine locked to its
// thread a pass is a hand-off through another thread of the process: about
// 100 µs on an idle machine, milliseconds when the housekeeping CPUs are
// busy, and exposed to every runtime lock a general thread may hold while
// descheduled. Taken in a task's slack (rt.Yielder), that still made one
// cycle in a few hundred late at a 250 µs period. In a relay the pass is
// taken by the thread that is off duty, and nothing passes between the two
// threads but atomic words — no channel, no wake-up, no runtime lock:
//
//   - the thread on duty runs the cycles and, at each cycle end, hands over
//     when the other thread has announced a deadline and the next cycle is
//     at or past it: it stores the duty word, lowers itself one priority
//     below the task's and goes off duty;
//   - off duty, a thread first passes through the scheduler (a yield; the
//     runtime's 10 ms start again from there), then announces a deadline
//     on the task's grid RelayDuty after the duty it handed over began,
//     sleeps there and takes the cycles when the duty word says so.
//
// A thread's pass, wait and duty (two RelayDuty) stay under rt.YieldLatest,
// and when a pass is so slow that the thread off duty announces too late,
// the thread on duty yields on its own (rt.Yielder's deadline), so the relay
// is never needed for correctness. The task's state passes from one thread
// to the other through the duty word (an atomic store and load), and the
// two never run a cycle at once. A thread going off duty moves to the
// housekeeping CPUs for its pass and comes back half a period before its
// deadline, in the slack of the cycle running then, so that nothing of the
// pass touches the task's CPU (measured here before the move: the first
// cycle of a duty was late about five times as often as the others). Where there
// is no other CPU, it stays and runs one priority below the task.

const (
	// RelayDuty is how long each thread runs the cycles before the other
	// takes over.
	RelayDuty = 4 * time.Millisecond
	// RelayMaxPeriod is the longest period run as a relay: slower tasks
	// have the slack for rt.Yielder's passes.
	RelayMaxPeriod = 2 * time.Millisecond
)

// relay is the state the two threads of a task share.
type relay struct {
	// duty is the side (0 or 1) running the cycles.
	duty atomic.Int32
	// began is the first deadline of the current duty.
	began atomic.Int64
	// next is the thread on duty's next deadline.
	next atomic.Int64
	// at is the deadline the thread off duty takes over at; 0 for none.
	at atomic.Int64
	// quit is set when the task stops (the side on duty ran the stop
	// cycle) or a side could not start.
	quit atomic.Bool
	// home is the task's CPU; away the housekeeping CPUs, where a thread
	// off duty takes its pass through the scheduler when move is set (the
	// task is pinned and there is another CPU to go to).
	home, away rt.CPUMask
	move       bool
	// tid is the second thread's id (the first is the task's tid).
	tid   int
	count atomic.Uint64
}

func newRelay() *relay { return &relay{} }

func (r *relay) stop() { r.quit.Store(true) }

// placeRelays decides where each relay's thread off duty goes: to the CPUs
// no task is pinned to (the calling general thread's affinity without
// them), so that its pass through the scheduler — futex calls, the wake-up
// by another thread — happens away from the task's CPU. Without such a CPU
// it stays, one priority below the task.
func (e *Executive) placeRelays() {
	var pinned []int
	for _, t := range e.tasks {
		if t.cpu >= 0 {
			pinned = append(pinned, t.cpu)
		}
	}
	away := rt.HousekeepingMask(pinned)
	for _, t := range e.tasks {
		if t.relay != nil && t.cpu >= 0 && !away.Empty() {
			t.relay.home, t.relay.away, t.relay.move = rt.MaskOf(t.cpu), away, true
		}
	}
}

// relayed reports whether a task runs as a relay.
func (t *task) relayed() bool {
	return !t.e.opts.NoRealtime && t.period <= RelayMaxPeriod
}

// runStandby is the second thread of a relayed task: set up at
// standbyPriority on the task's CPU, it starts off duty.
func (t *task) runStandby(ctx context.Context, ready chan<- struct{}, start <-chan struct{}) {
	e := t.e
	st := rt.Thread{Priority: t.standbyPriority(), CPU: t.cpu}.Setup()
	e.mu.Lock()
	t.rtst.Merge(st)
	t.relay.tid = rt.Tid()
	e.mu.Unlock()
	ready <- struct{}{}
	select {
	case <-start:
	case <-ctx.Done():
		t.relay.stop()
		return
	}
	defer t.recoverFault()
	defer t.relay.stop()
	t.relayLoop(1, ctx.Done())
}

// standbyPriority is the priority of the thread off duty: the task's when it
// goes to another CPU, one below when it stays.
func (t *task) standbyPriority() int {
	if t.relay.move {
		return t.priority
	}
	return max(1, t.priority-1)
}

// stepDown takes a thread going off duty out of the cycles' way: to the
// housekeeping CPUs, or one priority below.
func (t *task) stepDown() {
	switch r := t.relay; {
	case r.move:
		_ = r.away.SetAffinity()
	case t.standbyPriority() != t.priority:
		_ = rt.SetPriority(t.standbyPriority())
	}
}

// stepUp brings a thread that takes over at deadline at back: to the
// task's CPU half a period before it, in the slack of the cycle that runs
// then, or to the task's priority.
func (t *task) stepUp(at time.Duration) {
	switch r := t.relay; {
	case r.move:
		t.nap(at - t.period/2)
		_ = r.home.SetAffinity()
	case t.standbyPriority() != t.priority:
		t.nap(at - t.period/2)
		_ = rt.SetPriority(t.priority)
	}
}

// nap waits off duty until t without holding up the runtime (rt.Nap) on
// the real clock, with the clock's sleep on another.
func (t *task) nap(until time.Duration) {
	if _, real := t.e.clock.(rt.Monotonic); real {
		rt.Nap(until)
		return
	}
	t.e.clock.SleepUntil(until)
}

// relayLoop is one side's life: off duty until handed the task, then on
// duty until it hands over. Side 0 starts on duty.
func (t *task) relayLoop(side int32, done <-chan struct{}) {
	r := t.relay
	if side == 0 {
		t.sched, t.dt = t.first, t.period
		t.rec.begin(t.first)
		r.began.Store(int64(t.first))
		r.next.Store(int64(t.first))
		t.yield.Start(t.e.clock.Now()) // just scheduled (Run's start)
	}
	for {
		if side != 0 || r.count.Load() > 0 {
			if !t.standBy(side) {
				return
			}
		}
		if !t.onDuty(side, done) {
			return
		}
	}
}

// standBy is a side off duty: its pass through the scheduler, then asleep
// to the deadline it announces, then until the hand-over. It reports false
// when the task has stopped.
func (t *task) standBy(side int32) bool {
	r := t.relay
	clock := t.e.clock
	if side == 1 && r.count.Load() == 0 {
		t.stepDown() // the second thread's start
	}
	rt.Yield()
	passed := clock.Now()
	if r.quit.Load() {
		return false
	}
	next := time.Duration(r.next.Load())
	want := max(next+t.period, time.Duration(r.began.Load())+RelayDuty)
	at := next + (want-next+t.period-1)/t.period*t.period
	r.at.Store(int64(at))
	t.stepUp(at)
	clock.SleepUntil(at)
	for r.duty.Load() != side {
		if r.quit.Load() {
			return false
		}
		rt.YieldCPU()
	}
	t.yield.Start(passed)
	return true
}

// onDuty runs the task's cycles until it hands over (true) or the task
// stops (false). Hot path.
func (t *task) onDuty(side int32, done <-chan struct{}) bool {
	r := t.relay
	clock := t.e.clock
	limit := t.e.opts.Cycles
	for {
		select {
		case <-done:
			t.stop(wire.Stopping, wire.FaultStop)
			return false
		default:
		}
		if limit > 0 && t.cycle >= limit {
			t.stop(wire.Stopping, wire.FaultStop)
			return false
		}
		t.step(clock)
		r.next.Store(int64(t.sched))
		if at := r.at.Load(); at != 0 && t.sched >= time.Duration(at) {
			r.at.Store(0)
			r.began.Store(int64(t.sched))
			r.count.Add(1)
			t.stats.relays.Store(r.count.Load())
			// Hand over before stepping down: the other thread may be
			// waiting at the task's priority on this CPU, and would keep
			// a lowered thread from ever storing the duty.
			r.duty.Store(1 - side)
			t.stepDown()
			return true
		}
	}
}
