package executive

import "github.com/mkrt/mkrt/shm/wire"

// StartForTest readies the executive for CycleForTest without starting
// threads: state running, first deadline now.
func (e *Executive) StartForTest() {
	now := e.clock.Now()
	for _, t := range e.tasks {
		t.first, t.sched, t.dt = now, now, t.period
		t.rec.begin(now)
		t.yield.Start(now)
		t.counters = make([]TaskCounters, len(e.tasks))
	}
	e.setState(wire.Running, wire.NoFault, "")
}

// CycleForTest runs one cycle of a task on the caller's goroutine, through
// the same code as the task's thread.
func (e *Executive) CycleForTest(task int) { e.tasks[task].step(e.clock) }

// StopForTest runs a task's stop cycle.
func (e *Executive) StopForTest(task int) { e.tasks[task].stop(wire.Stopping, wire.FaultStop) }
