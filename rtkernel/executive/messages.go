package executive

import (
	"time"

	"github.com/mkrt/mkrt/shm/wire"
)

// TaskCounters are one task's counters.
type TaskCounters struct {
	Cycles uint64
	// Overruns counts cycles that ended after their deadline; Missed the
	// periods skipped because of them.
	Overruns, Missed uint64
	// Consecutive is the current run of overruns.
	Consecutive uint64
	Faults      uint64
	// LastWake and LastExec are the last cycle's wake-up latency and
	// execution time; MaxWake and MaxExec the largest so far.
	LastWake, LastExec, MaxWake, MaxExec time.Duration
	// Yields counts the task's passes through the Go scheduler in its slack
	// (see rt.Yielder); MaxYield is the longest.
	Yields   uint64
	MaxYield time.Duration
	// Relays counts the hand-overs between the two threads of a task run
	// as a relay (periods up to RelayMaxPeriod with real-time set-up).
	Relays uint64
}

// Heartbeat is the executive's liveness report.
type Heartbeat struct {
	Cycle  uint64
	Time   time.Duration
	State  wire.State
	Code   wire.FaultCode
	Reason string
	// Tasks is indexed like the config's tasks. It is only valid during the
	// call: copy what you keep.
	Tasks []TaskCounters
}
