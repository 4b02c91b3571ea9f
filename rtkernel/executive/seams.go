package executive

import (
	"time"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Program is one task's compiled block program (*blocks.TaskProgram). It is
// bound to the tag table its task works on (see Programs).
type Program interface {
	// Run executes the blocks once. now is the cycle's scheduled start on
	// the monotonic clock, dt the scheduled time since the previous cycle.
	// Hot path: must not allocate or block.
	Run(now, dt time.Duration)
	// Outputs lists the tags the program writes.
	Outputs() []tag.ID
}

// ParamSetter is implemented by programs whose block parameters can be
// changed at run time ("block.param" names). Called on the task's thread
// between cycles.
type ParamSetter interface {
	SetParam(name string, value float64) error
}

// Programs binds each task's program to the tag table the task works on:
//
//	func(task string, tab *tag.Table) (executive.Program, error) {
//		p, err := blocks.Compile(cfg, tab)
//		if err != nil {
//			return nil, err
//		}
//		return p.Task(task), nil
//	}
type Programs func(task string, tab *tag.Table) (Program, error)

// IO is the field I/O driver. Both calls are on the hot path: they copy
// between the driver's buffers and the table without blocking (the driver
// talks to the devices from its own goroutines). Each task calls them from
// its own thread, so they must be safe for concurrent calls on different
// tables.
type IO interface {
	// ReadInputs copies the latest device values into tab. now is the wall
	// clock time of the cycle.
	ReadInputs(tab *tag.Table, now time.Time)
	// WriteOutputs hands the values of ids in tab to the driver.
	WriteOutputs(tab *tag.Table, ids []tag.ID)
}

// Channel is the executive's side of the shared-memory channel to the
// general kernel. Every call is on the hot path and must not block or
// allocate. All calls come from the first task's thread except
// RecordLatency, which each task makes for its own index.
type Channel interface {
	// DrainCommands takes pending units of commands while fewer than max
	// commands were taken (a unit is taken whole, even past max), hands
	// each to apply with a results slice of its length, sends apply's
	// results back and returns how many commands were taken. A command
	// submitted alone is a unit of one; several submitted as one unit
	// (shm.Reader.SubmitAll) are applied by apply all in this cycle or
	// none.
	DrainCommands(max int, apply func(unit []wire.Command, res []wire.Result)) int
	// Publish writes the process image at the end of a cycle.
	Publish(tab *tag.Table, cycle uint64)
	// Heartbeat reports liveness and state once per cycle of the first task.
	Heartbeat(h Heartbeat)
	// Event reports an overrun, a fault or a state change.
	Event(e wire.Event)
	// RecordLatency records one cycle's wake-up latency and execution time
	// of task (its index in the config) into the shared histograms.
	RecordLatency(task int, wake, exec time.Duration)
}

// Clock is the monotonic clock of the cyclic loop (rt.Monotonic for real).
type Clock interface {
	// Now is the monotonic time.
	Now() time.Duration
	// SleepUntil returns when Now has reached t (at once if it has).
	SleepUntil(t time.Duration)
}

// Wall is the wall clock used for source timestamps (time.Now for real).
type Wall func() time.Time
