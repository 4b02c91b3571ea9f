package executive

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// safeValue is one output's configured safe value.
type safeValue struct {
	id    tag.ID
	value float64
	text  string
}

// stats are a task's counters, written by its thread and read by Status.
type stats struct {
	cycles, overruns, missed, consecutive, faults, yields, relays atomic.Uint64
	lastWake, lastExec, maxWake, maxExec, maxYield                atomic.Int64
}

func (s *stats) load() TaskCounters {
	return TaskCounters{Cycles: s.cycles.Load(), Overruns: s.overruns.Load(), Missed: s.missed.Load(),
		Consecutive: s.consecutive.Load(), Faults: s.faults.Load(),
		LastWake: time.Duration(s.lastWake.Load()), LastExec: time.Duration(s.lastExec.Load()),
		MaxWake: time.Duration(s.maxWake.Load()), MaxExec: time.Duration(s.maxExec.Load()),
		Yields: s.yields.Load(), MaxYield: time.Duration(s.maxYield.Load()), Relays: s.relays.Load()}
}

// task is one cyclic task; everything but stats, rec's atomics and events is
// owned by the task's thread once Run has started.
type task struct {
	e        *Executive
	idx      int
	name     string
	period   time.Duration
	priority int
	cpu      int
	policy   configs.OverrunPolicy
	commands int
	watchdog uint64

	tab        *tag.Table
	prog       Program
	outputs    []tag.ID
	safe       []safeValue
	safeWrites []tag.ID
	owner      []int
	apply      func([]wire.Command, []wire.Result)
	// check and applyOne are checkWrite and applyCommand, made once.
	check, applyOne func(*wire.Command) wire.Result
	one             [1]tag.ID
	counters        []TaskCounters // heartbeat scratch, first task only
	ho              *handover      // first task only; nil without hand-over

	rtst   rt.Status // guarded by e.mu
	stats  stats
	rec    *recorder
	events ring // to the first task

	tid   int           // thread id, set before ready
	first time.Duration // first deadline
	sched time.Duration // current cycle's deadline
	dt    time.Duration
	cycle uint64
	yield rt.Yielder
	relay *relay // nil unless the task runs as a relay (relayed)
}

// run is the task's thread: set-up, the cyclic loop, and the stop cycle.
func (t *task) run(ctx context.Context, ready chan<- struct{}, start <-chan struct{}) {
	e := t.e
	var st rt.Status
	if e.opts.NoRealtime {
		rt.Thread{CPU: -1}.Setup()
	} else {
		st = rt.Thread{Priority: t.priority, CPU: t.cpu}.Setup()
	}
	e.mu.Lock()
	t.rtst = st
	t.tid = rt.Tid()
	e.mu.Unlock()
	t.counters = make([]TaskCounters, len(e.tasks))
	ready <- struct{}{}
	select {
	case <-start:
	case <-ctx.Done():
		// Stopped before the first cycle: the stop cycle still runs.
		if t.relay != nil {
			t.relay.stop()
		}
		t.stop(wire.Stopping, wire.FaultStop)
		return
	}
	defer t.recoverFault()
	if t.relay != nil {
		defer t.relay.stop()
		t.relayLoop(0, ctx.Done())
		return
	}
	t.loop(ctx.Done())
}

// loop is the cyclic loop. Hot path: no allocation, no lock, no blocking
// call but the clock's sleep.
func (t *task) loop(done <-chan struct{}) {
	clock := t.e.clock
	t.sched, t.dt = t.first, t.period
	t.rec.begin(t.first)
	t.yield.Start(clock.Now())
	limit := t.e.opts.Cycles
	for {
		select {
		case <-done:
			t.stop(wire.Stopping, wire.FaultStop)
			return
		default:
		}
		if limit > 0 && t.cycle >= limit {
			t.stop(wire.Stopping, wire.FaultStop)
			return
		}
		t.step(clock)
	}
}

// step sleeps to the cycle's deadline, runs the cycle, accounts for it and,
// when one is due and the task is no relay, yields in the slack before the
// next deadline. It returns the cycle's end. Hot path.
func (t *task) step(clock Clock) time.Duration {
	t.sleep(clock)
	start := clock.Now()
	t.cycleOnce()
	end := clock.Now()
	t.account(start, end)
	if t.relay == nil && t.yield.Due(end, t.sched) {
		t.passScheduler(clock, end)
	}
	return end
}

// sleep sleeps to the cycle's deadline. When waking there would leave the
// task without a pass through the scheduler for longer than the Go runtime
// lets a goroutine run before it preempts it, the task yields first; a long
// sleep is cut into slices with a yield after each (see rt.Yielder). Hot
// path.
func (t *task) sleep(clock Clock) {
	for t.yield.Overdue(t.sched) {
		clock.SleepUntil(t.yield.Slice(clock.Now()))
		t.passScheduler(clock, clock.Now())
	}
	clock.SleepUntil(t.sched)
}

// passScheduler yields and records it. Hot path.
func (t *task) passScheduler(clock Clock, from time.Duration) {
	rt.Yield()
	t.yield.Done(from, clock.Now())
	t.stats.yields.Store(t.yield.Count)
	t.stats.maxYield.Store(int64(t.yield.Max))
}

// cycleOnce is one cycle: commands, inputs, program, outputs, image. Hot path.
func (t *task) cycleOnce() {
	e := t.e
	if t.idx == 0 {
		e.ch.DrainCommands(t.commands, t.apply)
	}
	if e.share != nil {
		e.share.collect(t.idx, t.tab)
	}
	e.io.ReadInputs(t.tab, e.wall())
	if t.ho != nil {
		t.takeOver()
	}
	writes := t.outputs
	if wire.State(e.state.Load()) == wire.Running {
		t.prog.Run(t.sched, t.dt)
	} else {
		t.driveSafe()
		writes = t.safeWrites
	}
	if t.ho != nil {
		t.claim()
	}
	t.write(writes)
	if e.share != nil {
		e.share.publish(t.idx, t.tab)
	}
	t.cycle++
	if t.ho != nil {
		t.offer()
	}
	if t.idx == 0 {
		e.ch.Publish(t.tab, t.cycle)
	}
}

// account records the cycle's timing, detects an overrun, applies the
// overrun policy and the watchdog, and sets the next deadline. Hot path.
func (t *task) account(start, end time.Duration) {
	e := t.e
	wake, exec := start-t.sched, end-start
	t.rec.record(wake, exec, end)
	e.ch.RecordLatency(t.idx, wake, exec)
	s := &t.stats
	s.cycles.Store(t.cycle)
	s.lastWake.Store(int64(wake))
	s.lastExec.Store(int64(exec))
	if int64(wake) > s.maxWake.Load() {
		s.maxWake.Store(int64(wake))
	}
	if int64(exec) > s.maxExec.Load() {
		s.maxExec.Store(int64(exec))
	}
	deadline := t.sched + t.period
	next := deadline
	if end > deadline {
		s.overruns.Add(1)
		n := s.consecutive.Add(1)
		if t.policy == configs.OverrunSkip {
			k := (end-t.sched)/t.period + 1
			next = t.sched + k*t.period
			s.missed.Add(uint64(k - 1))
		}
		now := e.wall().UnixNano()
		t.event(wire.Event{Kind: wire.Overrun, Task: t.idx, Tag: -1, Cycle: t.cycle, Time: now, State: wire.State(e.state.Load()), Value: float64(end - deadline)})
		if n == t.watchdog && e.enterSafe(wire.FaultOverruns, t.overrunReason(n)) {
			s.faults.Add(1)
			t.event(wire.Event{Kind: wire.Fault, Task: t.idx, Tag: -1, Cycle: t.cycle, Time: now, State: wire.Safe, Code: wire.FaultOverruns, Text: *e.reason.Load()})
		}
	} else {
		s.consecutive.Store(0)
	}
	t.dt = next - t.sched
	t.sched = next
	if t.idx == 0 {
		t.forwardEvents()
		t.heartbeat(end)
	}
}

// overrunReason says why the watchdog tripped (runs once per fault).
func (t *task) overrunReason(n uint64) string {
	return fmt.Sprintf("task %q overran its %v period %d times in a row", t.name, t.period, n)
}

// event hands e to the Channel (first task) or to the first task's ring.
func (t *task) event(ev wire.Event) {
	if t.idx == 0 {
		t.e.ch.Event(ev)
		return
	}
	t.events.push(ev)
}

// forwardEvents passes the queued events of every task to the Channel.
// First task.
func (t *task) forwardEvents() {
	for _, o := range t.e.tasks {
		for {
			ev, ok := o.events.pop()
			if !ok {
				break
			}
			t.e.ch.Event(ev)
		}
	}
}

// heartbeat reports the first task's cycle, the state and every counter.
func (t *task) heartbeat(now time.Duration) {
	e := t.e
	for i, o := range e.tasks {
		t.counters[i] = o.stats.load()
	}
	e.ch.Heartbeat(Heartbeat{Cycle: t.cycle, Time: now, State: wire.State(e.state.Load()), Code: wire.FaultCode(e.code.Load()),
		Reason: *e.reason.Load(), Tasks: t.counters})
}

// driveSafe sets the task's safe-state tags to their safe values.
func (t *task) driveSafe() {
	now := t.e.wall().UnixNano()
	for _, sv := range t.safe {
		t.tab.Samples[sv.id] = tag.Sample{Value: sv.value, Quality: tag.Uncertain, Reason: tag.SafeState, Time: now}
		if sv.text != "" {
			t.tab.Text[sv.id] = sv.text
		}
	}
}

// stop runs the last cycle: state s, outputs at their safe values, the image
// and a heartbeat published.
func (t *task) stop(s wire.State, code wire.FaultCode) {
	e := t.e
	if cur := wire.State(e.state.Load()); cur == wire.Running || cur == wire.Safe {
		if e.state.CompareAndSwap(uint32(cur), uint32(s)) {
			reason := "stopped"
			if s == wire.Stopping && cur == wire.Safe {
				reason = *e.reason.Load()
				code = wire.FaultCode(e.code.Load())
			}
			e.reason.Store(&reason)
			e.code.Store(uint32(code))
		}
	}
	t.driveSafe()
	t.write(t.safeWrites)
	if e.share != nil {
		e.share.publish(t.idx, t.tab)
	}
	if t.idx == 0 {
		e.ch.Publish(t.tab, t.cycle)
		t.forwardEvents()
		t.heartbeat(e.clock.Now())
	}
}

// recoverFault turns a panic of the program or a driver into the faulted
// state: outputs safe, every task stopped, Run returns ErrFault.
func (t *task) recoverFault() {
	r := recover()
	if r == nil {
		return
	}
	e := t.e
	reason := fmt.Sprintf("task %q: panic: %v", t.name, r)
	e.setState(wire.Faulted, wire.FaultPanic, reason)
	t.stats.faults.Add(1)
	e.log.Error("executive: task faulted; outputs at their safe values", "task", t.name, "reason", reason)
	func() {
		defer func() { _ = recover() }()
		t.stop(wire.Faulted, wire.FaultPanic)
	}()
	if t.idx != 0 {
		t.events.push(wire.Event{Kind: wire.Fault, Task: t.idx, Tag: -1, Cycle: t.cycle, Time: e.wall().UnixNano(), State: wire.Faulted, Code: wire.FaultPanic, Text: reason})
	} else {
		func() {
			defer func() { _ = recover() }()
			e.ch.Event(wire.Event{Kind: wire.Fault, Task: t.idx, Tag: -1, Cycle: t.cycle, Time: e.wall().UnixNano(), State: wire.Faulted, Code: wire.FaultPanic, Text: reason})
		}()
	}
	if e.cancel != nil {
		e.cancel()
	}
}

// applyUnit answers a unit of commands into res (wire.ApplyUnit): a
// command alone as applyCommand does; a unit of several tag writes all
// checked first, then all applied in this cycle, or none. First task's
// thread, between cycles.
func (t *task) applyUnit(unit []wire.Command, res []wire.Result) {
	wire.ApplyUnit(unit, res, t.check, t.applyOne)
}

// checkWrite answers what applyCommand would answer to c, a tag write,
// without applying it. Hot path.
func (t *task) checkWrite(c *wire.Command) wire.Result {
	res := wire.Result{ID: c.ID, Status: wire.Applied, Cycle: t.cycle + 1}
	if c.Kind != wire.WriteTag {
		res.Status = wire.Unsupported
		return res
	}
	if res.Status = wire.CheckTagWrite(t.tab.Info, c.Tag, c.Value); res.Status != wire.Applied {
		return res
	}
	res.Old = t.tab.Samples[c.Tag].Value
	switch {
	case t.e.blockOut[c.Tag] || t.owner[c.Tag] != t.idx:
		res.Status = wire.Owned
	case wire.State(t.e.state.Load()) != wire.Running:
		res.Status = wire.NotRunning
	}
	return res
}

// applyCommand validates and applies one command. First task's thread,
// between cycles; allocation-free except for a halt's reason.
func (t *task) applyCommand(c *wire.Command) wire.Result {
	e := t.e
	res := wire.Result{ID: c.ID, Status: wire.Applied, Cycle: t.cycle + 1}
	running := wire.State(e.state.Load()) == wire.Running
	switch c.Kind {
	case wire.Halt:
		if e.enterSafe(wire.FaultHalt, "halted by "+c.Origin.String()) {
			// Queued, not sent: the Channel is inside DrainCommands.
			t.events.push(wire.Event{Kind: wire.StateChange, Task: t.idx, Tag: -1, Cycle: t.cycle, Time: e.wall().UnixNano(), State: wire.Safe, Code: wire.FaultHalt, Text: *e.reason.Load()})
		}
		return res
	case wire.SetParam:
		if !running {
			res.Status = wire.NotRunning
			return res
		}
		ps, ok := t.prog.(ParamSetter)
		if !ok {
			res.Status = wire.Unsupported
			return res
		}
		if err := ps.SetParam(string(c.Param), c.Value.Num); err != nil {
			res.Status = wire.BadParam
		}
		return res
	case wire.Release:
		res.Status = t.release(time.Duration(c.Value.Num))
		return res
	case wire.Take:
		res.Status = t.take(time.Duration(c.Value.Num))
		return res
	}
	if res = t.checkWrite(c); res.Status != wire.Applied {
		return res
	}
	in := &t.tab.Info[c.Tag]
	smp := &t.tab.Samples[c.Tag]
	if c.Value.IsText {
		t.tab.Text[c.Tag] = string(c.Value.Text)
		*smp = tag.Sample{Quality: tag.Good, Time: e.wall().UnixNano()}
	} else {
		*smp = tag.Sample{Value: c.Value.Num, Quality: tag.Good, Time: e.wall().UnixNano()}
	}
	if in.Device != "" {
		t.one[0] = c.Tag
		t.write(t.one[:])
	}
	return res
}
