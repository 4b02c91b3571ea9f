// Package wire is the vocabulary that crosses between the partition and the
// general kernel, owned once: the executive's state and fault codes, its
// real-time mode, the commands the general side sends and the statuses the
// executive answers with, the events it reports, where it stands in a
// hand-over, and the one check of a value written to a tag (CheckWrite).
//
// The executive (rtkernel), the shared region (shm), the bridge, the
// supervisor, the control socket, the CLI, the config validator and every
// fake use these types directly; nothing translates them. They are plain
// integer enums with the numbers the region stores. Nothing here needs
// privileges.
package wire

import (
	"fmt"
	"strings"

	"github.com/mkrt/mkrt/shm/tag"
)

// State is the executive's state, as its heartbeat publishes it.
type State uint8

// The executive states. The zero value, Down, is "no executive": none
// attached to the region yet, or the supervisor declared it gone.
const (
	Down     State = iota // no executive (never attached, or gone)
	Booting               // set up, no cycle run yet
	Running               // cycles run and commands are applied
	Safe                  // outputs held at their safe values (watchdog, halt)
	Stopping              // shutting down on request
	Faulted               // the executive declared a fault
)

// States lists every state, in order.
var States = [...]State{Down, Booting, Running, Safe, Stopping, Faulted}

var stateNames = [...]string{"down", "booting", "running", "safe", "stopping", "faulted"}

func (s State) String() string { return name(stateNames[:], int(s), "state") }

// Accepting reports whether the executive applies writes in this state.
func (s State) Accepting() bool { return s == Running }

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error { return parse(stateNames[:], b, "executive state", s) }

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
	// FaultStart: the control program could not start (PID 1 of an
	// application kernel reports it in the region before powering off).
	FaultStart
)

var faultNames = [...]string{"none", "overruns", "halt", "panic", "stop", "start failed"}

func (f FaultCode) String() string { return name(faultNames[:], int(f), "fault") }

// RTMode says whether the executive got the real-time set-up it asked for.
type RTMode uint8

// The real-time modes.
const (
	RTUnknown  RTMode = iota // not reported yet
	RTFull                   // SCHED_FIFO, pinned, memory locked
	RTDegraded               // something was missing; the reason says what
)

var rtNames = [...]string{"unknown", "full", "degraded"}

func (m RTMode) String() string { return name(rtNames[:], int(m), "rt") }

// CommandKind is what a command asks of the executive.
type CommandKind uint8

// The command kinds.
const (
	_ CommandKind = iota
	// WriteTag sets a tag at the start of the next cycle: Value.
	WriteTag
	// SetParam sets the block parameter named Param ("block.param") to
	// Value.Num at a cycle boundary.
	SetParam
	// Halt drives the outputs to their safe state and stops the control
	// program.
	Halt
	// Release hands the outputs over to the executive that takes over: the
	// releasing one drives the cycles that start before Value.Num
	// (monotonic ns on its clock), then offers its state and stops driving
	// once it is taken.
	Release
	// Take arms a standby executive's take-over: from its first cycle
	// starting at or after Value.Num it drives the outputs with the
	// released state.
	Take
)

var kindNames = [...]string{"", "write", "set parameter", "halt", "release", "take"}

func (k CommandKind) String() string { return name(kindNames[:], int(k), "command") }

// OriginMax is the longest origin a command carries; longer ones are cut.
const OriginMax = 48

// Origin names who sent a command, as "<protocol>:<who>" ("mqtt:scada",
// "modbus:10.0.0.3:50122", "cli:uid 0"), NUL-padded.
type Origin [OriginMax]byte

// NewOrigin makes an Origin from s, cut to OriginMax bytes.
func NewOrigin(s string) Origin {
	var o Origin
	copy(o[:], s)
	return o
}

func (o Origin) String() string {
	n := 0
	for n < len(o) && o[n] != 0 {
		n++
	}
	return string(o[:n])
}

// Split is the origin's protocol and who, on either side of the first ':'.
func (o Origin) Split() (protocol, who string) {
	p, w, _ := strings.Cut(o.String(), ":")
	return p, w
}

// Value is what a write puts into a tag: a number (bools as 0 or 1) or,
// for a string tag, text.
type Value struct {
	Num    float64
	Text   []byte
	IsText bool
}

// Number is a numeric (or bool) value.
func Number(f float64) Value { return Value{Num: f} }

// Text is a string tag's value.
func Text(s string) Value { return Value{Text: []byte(s), IsText: true} }

// ValueOf is the value for tag in: text for a string tag, num otherwise.
func ValueOf(in *tag.Info, num float64, text string) Value {
	if in.Type == tag.String {
		return Text(text)
	}
	return Number(num)
}

func (v Value) String() string {
	if v.IsText {
		return fmt.Sprintf("%q", v.Text)
	}
	return fmt.Sprint(v.Num)
}

// Command is a request from the general side to the executive.
type Command struct {
	// ID is assigned by the region's reader when it submits the command;
	// the result carries it back.
	ID   uint64
	Kind CommandKind
	// Tag is the tag a WriteTag writes.
	Tag tag.ID
	// Value is what WriteTag writes, SetParam's value (Num), or the time
	// of a Release or Take (Num, monotonic ns).
	Value Value
	// Param names SetParam's parameter, "block.param".
	Param []byte
	// Origin is who sent it.
	Origin Origin
}

// Status is the executive's answer to a command.
type Status uint8

// The statuses. The zero value is "no answer".
const (
	_           Status = iota
	Applied            // done at the start of the result's cycle
	UnknownTag         // no tag has that ID
	ReadOnly           // SCADA may not write the tag
	Owned              // the tag is written every cycle by a task's blocks
	WrongType          // text for a number, a number for text, NaN/Inf, a fraction for an integer, not 0/1 for a bool
	OutOfRange         // outside the type's range, min/max, or the string's length
	NotRunning         // the executive is not running (safe state, stopping)
	Unsupported        // the command kind is not supported
	BadParam           // the program rejected the parameter
	Withdrawn          // not applied: another command of its unit was refused
)

var statusNames = [...]string{"", "applied", "unknown tag", "read-only", "written by a task's blocks", "wrong type", "out of range",
	"executive not running", "unsupported", "bad parameter", "withdrawn"}

func (s Status) String() string { return name(statusNames[:], int(s), "status") }

// MarshalText writes the status's name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a status's name.
func (s *Status) UnmarshalText(b []byte) error { return parse(statusNames[:], b, "status", s) }

// Err is nil for Applied, else the sentinel that classifies the refusal
// (ErrUnknownTag, ErrReadOnly, ..., ErrRejected for an unknown status).
func (s Status) Err() error {
	switch s {
	case Applied:
		return nil
	case UnknownTag:
		return ErrUnknownTag
	case ReadOnly:
		return ErrReadOnly
	case Owned:
		return ErrOwned
	case WrongType:
		return ErrWrongType
	case OutOfRange:
		return ErrOutOfRange
	case NotRunning:
		return ErrNotRunning
	case Unsupported:
		return ErrUnsupported
	case BadParam:
		return ErrBadParam
	case Withdrawn:
		return ErrWithdrawn
	}
	return ErrRejected
}

// Result is the executive's answer to one command.
type Result struct {
	ID     uint64 // the command's ID
	Status Status
	// Cycle is the cycle at whose start the command was handled.
	Cycle uint64
	// Old is the tag's value before a write (numeric tags).
	Old float64
}

// Err is nil when the command was applied, else a *RejectedError.
func (r Result) Err() error {
	if r.Status == Applied {
		return nil
	}
	return &RejectedError{Result: r}
}

// EventKind classifies an event.
type EventKind uint8

// The event kinds.
const (
	_           EventKind = iota
	AlarmRaise            // an alarm became active; Tag, Value
	AlarmClear            // an alarm cleared; Tag, Value
	Overrun               // a cycle ended past its deadline; Value is how late (ns)
	Fault                 // the executive faulted; State, Code, Text
	StateChange           // the executive changed state; State, Code, Text
	Log                   // a log line; Text
)

var eventNames = [...]string{"", "alarm raise", "alarm clear", "overrun", "fault", "state change", "log"}

func (k EventKind) String() string { return name(eventNames[:], int(k), "event") }

// EventTextMax is the longest event text the region carries; longer text
// is cut.
const EventTextMax = 92

// Event is one alarm, overrun, fault, state change or log line from the
// executive.
type Event struct {
	Kind  EventKind
	Task  int    // task index, -1 for none
	Tag   tag.ID // -1 for none
	Cycle uint64
	Time  int64 // Unix ns
	State State
	Code  FaultCode
	Value float64
	Text  string
}

// HandOverMode is where an executive stands in a hand-over.
type HandOverMode uint8

// The hand-over modes.
const (
	Driving   HandOverMode = iota // drives the outputs (the normal case)
	Standby                       // runs its cycles without driving, waiting to take over
	Releasing                     // drives until the taking executive takes
	Released                      // handed the outputs over; drives nothing
)

var modeNames = [...]string{"driving", "standby", "releasing", "released"}

func (m HandOverMode) String() string { return name(modeNames[:], int(m), "mode") }

// MarshalText writes the mode's name.
func (m HandOverMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a mode's name.
func (m *HandOverMode) UnmarshalText(b []byte) error {
	return parse(modeNames[:], b, "hand-over mode", m)
}

// BlockCounts say how a program's block state carried over a hand-over.
type BlockCounts struct {
	// Carried blocks took the old program's state; Fresh blocks are new
	// (or changed shape) and started from scratch; Dropped blocks of the
	// old program are not in the new one.
	Carried int `json:"carried"`
	Fresh   int `json:"fresh"`
	Dropped int `json:"dropped"`
}

// HandOverCounters are one executive's hand-over counters, published in
// its region for the supervisor and `mkrt status`.
type HandOverCounters struct {
	Mode HandOverMode
	// Driven counts cycles that drove the outputs since the hand-over
	// began (release or take requested); Standby cycles run without
	// driving before the take; Released cycles after the release.
	Driven, Standby, Released uint64
	// Retries counts cycles at which the taking side found no offer yet
	// (the releasing side kept driving them).
	Retries uint64
	// Missed counts cycles that neither side drove.
	Missed uint64
	// Switch is the scheduled start (monotonic ns, on the releasing
	// executive's clock) of the first cycle the taking side drove.
	Switch int64
	// Blocks is how the block state carried over (taking side).
	Blocks BlockCounts
}

func name(names []string, i int, kind string) string {
	if i >= 0 && i < len(names) && (i > 0 || names[0] != "") {
		return names[i]
	}
	return fmt.Sprintf("%s(%d)", kind, i)
}

func parse[T ~uint8](names []string, b []byte, what string, dst *T) error {
	for i, n := range names {
		if n != "" && n == string(b) {
			*dst = T(i)
			return nil
		}
	}
	return fmt.Errorf("wire: unknown %s %q", what, b)
}
