package executive

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm/wire"
)

// A fast task runs on two threads that take turns (a relay), so that neither
// ever has to pass through the Go scheduler between two of its cycles.
//
// The Go runtime preempts a goroutine that has run for 10 ms without a pass
// through the scheduler (see rt.Yielder), and for a goroutine locked to its
// thread a pass is a hand-off through another thread of the process: about
// 100 µs on an idle machine, milliseconds when the housekeeping CPUs are
// busy. Taken in a task's slack (rt.Yielder), that still made one cycle in a
// few hundred late at a 250 µs period. With a relay the pass is taken by
// the thread that is off duty, where its cost does not matter:
//
//   - the thread on duty runs the cycles; RelayWake after it was last
//     scheduled it wakes the other (a channel send, in its slack);
//   - the woken thread, now freshly scheduled, picks a deadline on the task's
//     grid at least two periods ahead and RelayAt after the duty began,
//     announces it, raises itself to the task's priority and sleeps there;
//   - the thread on duty hands over at the first cycle end whose next
//     deadline is at or past the announced one, lowers itself below the
//     task's priority and parks (its pass through the scheduler);
//   - the new thread checks the hand-over when it wakes and runs the cycles.
//
// The task's state passes from one thread to the other through the duty
// word (an atomic store and load), and the two never run a cycle at once.
// When the woken thread is late, the thread on duty yields on its own
// (rt.Yielder's deadline), so the relay is never needed for correctness.
// Both threads have the task's CPU; the one off duty waits one priority
// below, so its own scheduling never delays a cycle.

// RelayAt is how long after the thread on duty was last scheduled it hands
// over; it wakes the other thread RelayWake after, so the other has
// RelayAt-RelayWake to be scheduled (about 100 µs here, milliseconds at
// worst) and then runs its own duty of about RelayWake. Both stay under
// rt.YieldLatest, the yield that backs a late hand-over.
const (
	RelayWake = 5 * time.Millisecond
	RelayAt   = 7 * time.Millisecond
	// RelayMaxPeriod is the longest period run as a relay: slower tasks
	// have the slack for rt.Yielder's passes.
	RelayMaxPeriod = 2 * time.Millisecond
)

// relay is the state the two threads of a task share.
type relay struct {
	// duty is the side (0 or 1) running the cycles.
	duty atomic.Int32
	// since is when the thread on duty was last scheduled.
	since atomic.Int64
	// next is the thread on duty's next deadline.
	next atomic.Int64
	// at is the deadline the thread off duty takes over at; 0 for none.
	at atomic.Int64
	// quit is closed when the task stops.
	quit     chan struct{}
	quitOnce sync.Once
	wake     [2]chan struct{}
	// tid is each side's thread id; woken is whether the other side has
	// been woken in this duty (owned by the side on duty).
	tid   [2]int
	woken bool
	count atomic.Uint64
}

func newRelay() *relay {
	return &relay{quit: make(chan struct{}), wake: [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}}
}

func (r *relay) stop() { r.quitOnce.Do(func() { close(r.quit) }) }

// relayed reports whether a task runs as a relay.
func (t *task) relayed() bool {
	return !t.e.opts.NoRealtime && t.period <= RelayMaxPeriod
}

// runStandby is the second thread of a relayed task: set up one priority
// below the task, it waits off duty until woken.
func (t *task) runStandby(ctx context.Context, ready chan<- struct{}, start <-chan struct{}) {
	e := t.e
	st := rt.Thread{Priority: t.standbyPriority(), CPU: t.cpu}.Setup()
	e.mu.Lock()
	t.rtst.Merge(st)
	t.relay.tid[1] = rt.Tid()
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

// standbyPriority is the priority of the thread off duty.
func (t *task) standbyPriority() int { return max(1, t.priority-1) }

// relayLoop is one side's life: off duty until woken and handed the task,
// then on duty until it hands over. Side 0 starts on duty.
func (t *task) relayLoop(side int32, done <-chan struct{}) {
	r := t.relay
	clock := t.e.clock
	if side == 0 {
		t.sched, t.dt = t.first, t.period
		t.rec.begin(t.first)
		now := clock.Now()
		r.since.Store(int64(now))
		r.next.Store(int64(t.first))
		t.yield.Start(now)
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

// standBy waits off duty: parked until woken, then asleep to the announced
// deadline, then until the hand-over. It reports false when the task has
// stopped (the side on duty runs the stop cycle and closes quit).
func (t *task) standBy(side int32) bool {
	r := t.relay
	clock := t.e.clock
	// The pass through the scheduler: parking below when not woken yet,
	// and a yield first, because a wake-up sent while this thread was
	// still handing over is already waiting and would not park it.
	rt.Yield()
	select {
	case <-r.wake[side]:
	case <-r.quit:
		return false
	}
	woke := clock.Now() // just scheduled: the runtime's 10 ms start again
	next := time.Duration(r.next.Load())
	want := max(next+2*t.period, time.Duration(r.since.Load())+RelayAt)
	at := next + (want-next+t.period-1)/t.period*t.period
	r.at.Store(int64(at))
	if t.standbyPriority() != t.priority {
		_ = rt.SetPriority(t.priority)
	}
	clock.SleepUntil(at)
	for r.duty.Load() != side {
		select {
		case <-r.quit:
			return false
		default:
		}
		rt.YieldCPU()
	}
	r.since.Store(int64(woke))
	t.yield.Start(woke)
	r.woken = false
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
		end := t.step(clock)
		r.next.Store(int64(t.sched))
		if !r.woken && end-time.Duration(r.since.Load()) >= RelayWake {
			r.woken = true
			select {
			case r.wake[1-side] <- struct{}{}:
			default:
			}
		}
		if at := r.at.Load(); at != 0 && t.sched >= time.Duration(at) {
			r.at.Store(0)
			r.count.Add(1)
			t.stats.relays.Store(r.count.Load())
			// Hand over before stepping down: the other thread may be
			// waiting at the task's priority on this CPU, and would keep
			// a lowered thread from ever storing the duty.
			r.duty.Store(1 - side)
			if t.standbyPriority() != t.priority {
				_ = rt.SetPriority(t.standbyPriority())
			}
			return true
		}
	}
}
