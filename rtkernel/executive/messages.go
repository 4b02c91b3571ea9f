package executive

import (
	"fmt"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
)

// State is the executive's state as reported in the heartbeat.
type State uint8

// The states.
const (
	Booting State = iota
	Running
	// Safe: outputs are held at their safe values (watchdog, halt command).
	Safe
	Stopping
	// Faulted: a task failed (a program panicked); Run returns an error.
	Faulted
)

var stateNames = [...]string{"booting", "running", "safe", "stopping", "faulted"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// FaultCode says why the executive left the running state.
type FaultCode uint16

// The fault codes.
const (
	NoFault FaultCode = iota
	// FaultOverruns: a task overran watchdog.overruns times in a row.
	FaultOverruns
	// FaultHalt: a halt command stopped the control program.
	FaultHalt
	// FaultPanic: a task's program or I/O panicked.
	FaultPanic
	// FaultStop: the executive was stopped.
	FaultStop
)

var faultNames = [...]string{"", "overruns", "halt", "panic", "stop"}

func (f FaultCode) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("fault(%d)", uint16(f))
}

// CommandKind is what a command does.
type CommandKind uint8

// The command kinds.
const (
	// WriteTag sets a tag: Value for numbers and bools (0/1), Text for strings.
	WriteTag CommandKind = iota + 1
	// SetParam sets a block parameter named "block.param" in Text to Value.
	SetParam
	// Halt drives the outputs to the safe state and stops the control program.
	Halt
	// Release hands the outputs over to the executive that takes over: it
	// drives the cycles that start before Value (monotonic ns), then offers
	// its state and stops driving once it is taken (see Baton).
	Release
	// Take arms the take-over of a standby executive: from its first cycle
	// starting at or after Value (monotonic ns) it takes the outputs and the
	// released state.
	Take
)

// Command is a request from the general kernel (SCADA, the CLI).
type Command struct {
	ID    uint64
	Kind  CommandKind
	Tag   tag.ID
	Value float64
	Text  string
	// Origin names the sender ("mqtt:<client>", "modbus:<addr>", "cli").
	Origin string
}

// ResultStatus is the outcome of a command.
type ResultStatus uint8

// The command outcomes.
const (
	Applied ResultStatus = iota
	UnknownTag
	NotWritable
	WrongType
	OutOfRange
	// OwnedByTask: the tag is written by another task's blocks every cycle.
	OwnedByTask
	// Refused: the executive is in the safe state.
	Refused
	Unsupported
	// BadParam: the program rejected the parameter.
	BadParam
)

var resultNames = [...]string{"applied", "unknown tag", "not writable", "wrong type", "out of range", "written by a task's blocks", "refused in safe state", "unsupported", "bad parameter"}

func (r ResultStatus) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// Result goes back to the sender of a command.
type Result struct {
	ID     uint64
	Status ResultStatus
	// Cycle is the cycle at whose start the command was handled.
	Cycle uint64
	// Old is the tag's value before a write.
	Old float64
}

// EventKind classifies an event.
type EventKind uint8

// The event kinds.
const (
	EventOverrun EventKind = iota + 1
	EventFault
	EventState
)

var eventNames = [...]string{"", "overrun", "fault", "state"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is an overrun, a fault or a state change.
type Event struct {
	Kind  EventKind
	Task  int
	Cycle uint64
	// Time is the monotonic time of the event.
	Time  time.Duration
	State State
	Code  FaultCode
	// Late is how far the cycle ran past its deadline (overruns).
	Late   time.Duration
	Reason string
}

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
}

// Heartbeat is the executive's liveness report.
type Heartbeat struct {
	Cycle  uint64
	Time   time.Duration
	State  State
	Code   FaultCode
	Reason string
	// Tasks is indexed like the config's tasks. It is only valid during the
	// call: copy what you keep.
	Tasks []TaskCounters
}
