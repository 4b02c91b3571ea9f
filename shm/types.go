package shm

import (
	"fmt"
	"math"

	"github.com/mkrt/mkrt/shm/tag"
)

// State is the executive's state as published in the heartbeat.
type State uint32

// The executive states. The zero value means no executive ever attached.
const (
	StateUnknown  State = 0
	StateBooting  State = 1
	StateRunning  State = 2
	StateSafe     State = 3 // outputs driven to their safe state
	StateStopping State = 4
	StateFaulted  State = 5
)

var stateNames = [...]string{"unknown", "booting", "running", "safe", "stopping", "faulted"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// RTMode says whether the executive got the real-time setup it asked for.
type RTMode uint32

// The real-time modes.
const (
	RTUnknown  RTMode = 0
	RTFull     RTMode = 1
	RTDegraded RTMode = 2 // SCHED_OTHER, no isolation, ... (see the reason)
)

func (m RTMode) String() string {
	switch m {
	case RTFull:
		return "full"
	case RTDegraded:
		return "degraded"
	}
	return "unknown"
}

// CommandKind is what a command asks of the executive.
type CommandKind uint8

// The command kinds.
const (
	// CmdWriteTag writes a tag at the start of the next cycle.
	CmdWriteTag CommandKind = 1
	// CmdSetParam changes a parameter tag at a cycle boundary.
	CmdSetParam CommandKind = 2
	// CmdHalt asks the executive to drive outputs safe and stop.
	CmdHalt CommandKind = 3
	// CmdRebirth and CmdHandOver are reserved for Sparkplug rebirth and
	// executive hand-over.
	CmdRebirth  CommandKind = 4
	CmdHandOver CommandKind = 5
)

// Origin names who sent a command ("mqtt:user", "modbus:10.0.0.3"),
// NUL-padded; longer names are cut.
type Origin [originMax]byte

// NewOrigin makes an Origin from s.
func NewOrigin(s string) Origin {
	var o Origin
	copy(o[:], s)
	return o
}

func (o Origin) String() string { return cstr(o[:]) }

// Command is a request from the bridge to the executive.
type Command struct {
	// ID is assigned by Submit; results carry it back.
	ID     uint64
	Kind   CommandKind
	Tag    tag.ID
	Value  float64
	Origin Origin
	// IsText marks a string value, held in Text. On the executive side Text
	// points into the Writer's buffer and is valid until the next
	// PollCommand.
	IsText bool
	Text   []byte
}

// Status is the executive's answer to a command.
type Status uint8

// The statuses.
const (
	StatusAccepted   Status = 1
	StatusOutOfRange Status = 2
	StatusReadOnly   Status = 3
	StatusUnknownTag Status = 4
	StatusType       Status = 5
	StatusBusy       Status = 6 // the executive cannot take it now (e.g. stopping)
	StatusRejected   Status = 7 // any other refusal (kind not supported, ...)
)

var statusNames = [...]string{"", "accepted", "out of range", "read-only", "unknown tag", "wrong type", "busy", "rejected"}

func (s Status) String() string {
	if int(s) < len(statusNames) && s != 0 {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Err is nil for StatusAccepted, else an error classified by errors.Is as
// ErrOutOfRange, ErrReadOnly, ErrUnknownTag, ErrType, ErrBusy or
// ErrRejected.
func (s Status) Err() error {
	switch s {
	case StatusAccepted:
		return nil
	case StatusOutOfRange:
		return ErrOutOfRange
	case StatusReadOnly:
		return ErrReadOnly
	case StatusUnknownTag:
		return ErrUnknownTag
	case StatusType:
		return ErrType
	case StatusBusy:
		return ErrBusy
	}
	return ErrRejected
}

// Result is the executive's answer to one command.
type Result struct {
	ID     uint64 // the command's ID
	Status Status
	Cycle  uint64  // the cycle it was applied at
	Old    float64 // the tag's value before (numeric tags)
}

// Err is the result's status as an error (nil when accepted).
func (r Result) Err() error {
	if err := r.Status.Err(); err != nil {
		return fmt.Errorf("shm: command %d: %w", r.ID, err)
	}
	return nil
}

// EventKind classifies an event.
type EventKind uint8

// The event kinds.
const (
	EventAlarmRaise EventKind = 1
	EventAlarmClear EventKind = 2
	EventOverrun    EventKind = 3
	EventFault      EventKind = 4
	EventState      EventKind = 5 // state change; Value is the new State
	EventLog        EventKind = 6
)

var eventNames = [...]string{"", "alarm raise", "alarm clear", "overrun", "fault", "state change", "log"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one alarm, overrun, fault, state change or log line from the
// executive. Text longer than 96 bytes is cut.
type Event struct {
	Kind  EventKind
	Task  int16  // task index, -1 for none
	Tag   tag.ID // -1 for none
	Cycle uint64
	Time  int64 // Unix ns
	Value float64
	Text  string
}

// Check classifies a write of cmd against the tag it names (the executive
// calls it before applying a CmdWriteTag or CmdSetParam): unknown tag,
// read-only, wrong type (text for a number or a number for a string), or out
// of the tag's Min..Max. It returns StatusAccepted when the write may go
// ahead. Hot path: no allocation.
func Check(tags []tag.Info, cmd *Command) Status {
	if cmd.Tag < 0 || int(cmd.Tag) >= len(tags) {
		return StatusUnknownTag
	}
	in := &tags[cmd.Tag]
	if !in.Writable {
		return StatusReadOnly
	}
	if (in.Type == tag.String) != cmd.IsText {
		return StatusType
	}
	if cmd.IsText {
		if len(cmd.Text) > in.Length {
			return StatusOutOfRange
		}
		return StatusAccepted
	}
	v := cmd.Value
	if math.IsNaN(v) || v < in.Min || v > in.Max {
		return StatusOutOfRange
	}
	if in.Type == tag.Bool && v != 0 && v != 1 {
		return StatusType
	}
	if lo, hi, ok := in.Type.IntRange(); ok && (v != math.Trunc(v) || v < lo || v > hi) {
		return StatusOutOfRange
	}
	return StatusAccepted
}
