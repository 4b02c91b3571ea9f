// Package plant is the seam between the bridge and the executive: the
// process image, the executive's health and the command path, as the bridge
// sees them through the shared-memory channel.
//
// The bridge's protocol servers (Sparkplug B, JSON MQTT, Modbus TCP) only
// ever talk to a Plant. The production Plant is an adapter over the
// shared-memory reader; bridge/bridgetest has an in-memory fake that behaves
// like the executive (writes applied at a cycle boundary, validated against
// the tag directory). Nothing here needs privileges.
package plant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
)

// Plant is the process image and command path of one running partition.
// Implementations are safe for concurrent use.
type Plant interface {
	// Tags is the tag directory; a tag's ID is its index.
	Tags() []tag.Info
	// Snapshot copies a consistent image into dst and text (both
	// len(Tags())); text receives string tags' values. seq increases with
	// every image the executive publishes.
	Snapshot(dst []tag.Sample, text []string) (seq uint64, err error)
	// Health is the executive's state and timing.
	Health() Health
	// Write asks the executive to set a tag at the start of a cycle and
	// waits, bounded by ctx, for its accept or reject. Errors are classified
	// with errors.Is against ErrUnknownTag, ErrReadOnly, ErrOutOfRange,
	// ErrBadValue, ErrBusy, ErrNotRunning and ErrRejected.
	Write(ctx context.Context, w Write) (Result, error)
}

// State is the executive's state, as in the shared-memory heartbeat.
type State uint8

// The executive states.
const (
	Booting State = iota
	Running
	Safe
	Stopping
	Faulted
	// Down means no executive is attached (no heartbeat).
	Down
)

var stateNames = [...]string{"booting", "running", "safe", "stopping", "faulted", "down"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Accepting reports whether the executive applies commands in this state.
func (s State) Accepting() bool { return s == Running }

// Percentiles is a latency distribution summary.
type Percentiles struct {
	P50, P99, P999, Max time.Duration
}

// TaskHealth is one cyclic task's timing.
type TaskHealth struct {
	Name     string
	Period   time.Duration
	Cycles   uint64
	Overruns uint64
	// Wakeup is the wake-up latency: actual start minus planned start.
	Wakeup Percentiles
	// Exec is the execution time of one cycle.
	Exec Percentiles
}

// Health is the executive's state and timing.
type Health struct {
	State State
	// Fault is the fault description when State is Faulted.
	Fault string
	// Cycle is the cycle counter of the heartbeat.
	Cycle uint64
	// RT is true when the tasks run with real-time scheduling; RTReason
	// says why not ("rt: degraded").
	RT       bool
	RTReason string
	Tasks    []TaskHealth
}

// Write is one command from SCADA.
type Write struct {
	ID tag.ID
	// Value is the new value of numeric and bool tags (bool as 0 or 1).
	Value float64
	// Text is the new value of string tags.
	Text string
	// Source is the protocol the command came from: "sparkplug", "json", "modbus", "cli".
	Source string
	// Who identifies the client (MQTT client id or user, Modbus peer address).
	Who string
}

// Result is the executive's answer to an accepted write.
type Result struct {
	// Cycle is the cycle at whose start the write was applied.
	Cycle uint64
	// Old is the tag's sample before the write (OldText for string tags).
	Old     tag.Sample
	OldText string
}

// Write errors. Every error Write returns matches one of them with errors.Is.
var (
	ErrUnknownTag = errors.New("unknown tag")
	ErrReadOnly   = errors.New("tag is not writable")
	ErrOutOfRange = errors.New("value out of range")
	ErrBadValue   = errors.New("value does not fit the tag's type")
	// ErrBusy: the command ring is full; retry later.
	ErrBusy = errors.New("command ring full")
	// ErrNotRunning: the executive is not running (faulted, stopped, down).
	ErrNotRunning = errors.New("executive not running")
	// ErrRejected: the executive refused the write; RejectedError says why.
	ErrRejected = errors.New("write rejected by the executive")
)

// RejectedError is a write the executive refused, with the cycle it did so.
type RejectedError struct {
	Cycle  uint64
	Reason error // one of the Err values above
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("plant: write rejected at cycle %d: %v", e.Cycle, e.Reason)
}

// Is makes errors.Is match ErrRejected and the reason.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

func (e *RejectedError) Unwrap() error { return e.Reason }

// Validate checks a write against the tag directory the way the executive
// does: the tag exists, SCADA may write it, the value fits the type and lies
// within min/max. Every protocol server calls it before Write so that bad
// writes never reach the command ring.
func Validate(tags []tag.Info, w Write) error {
	if w.ID < 0 || int(w.ID) >= len(tags) {
		return fmt.Errorf("plant: tag id %d: %w", w.ID, ErrUnknownTag)
	}
	in := &tags[w.ID]
	if !in.Writable {
		return fmt.Errorf("plant: %s: %w", in.Name, ErrReadOnly)
	}
	if in.Type == tag.String {
		if in.Length > 0 && len(w.Text) > in.Length {
			return fmt.Errorf("plant: %s: %d bytes, at most %d: %w", in.Name, len(w.Text), in.Length, ErrBadValue)
		}
		return nil
	}
	v := w.Value
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("plant: %s: %v: %w", in.Name, v, ErrBadValue)
	}
	if lo, hi, ok := in.Type.IntRange(); ok || in.Type == tag.Bool {
		if in.Type == tag.Bool {
			lo, hi = 0, 1
		}
		if v < lo || v > hi {
			return fmt.Errorf("plant: %s: %v outside %s range: %w", in.Name, v, in.Type, ErrBadValue)
		}
		if v != math.Trunc(v) {
			return fmt.Errorf("plant: %s: %v is not an integer: %w", in.Name, v, ErrBadValue)
		}
	}
	if v < in.Min || v > in.Max {
		return fmt.Errorf("plant: %s: %v outside [%v, %v]: %w", in.Name, v, in.Min, in.Max, ErrOutOfRange)
	}
	return nil
}
