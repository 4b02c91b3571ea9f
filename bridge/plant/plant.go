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
	"fmt"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
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
	// Write sends a wire.WriteTag command to the executive, which applies
	// it at the start of a cycle, and waits, bounded by ctx, for its answer.
	// A refusal is a *wire.RejectedError (errors.Is wire.ErrRejected and the
	// status's sentinel: wire.ErrOutOfRange, wire.ErrReadOnly, ...); a full
	// command ring is wire.ErrBusy; no executive to answer is
	// wire.ErrNotRunning.
	Write(ctx context.Context, c wire.Command) (wire.Result, error)
}

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
	State wire.State
	// Fault is why the executive is not running: its fault code's name
	// when it faulted, or why the supervisor declared it down.
	Fault string
	// Cycle is the cycle counter of the heartbeat.
	Cycle uint64
	// RT is true when the tasks run with real-time scheduling; RTReason
	// says why not ("rt: degraded").
	RT       bool
	RTReason string
	Tasks    []TaskHealth
}

// Check is the check every protocol server makes before it sends a write:
// wire.CheckTagWrite against the tag directory, refusing what the executive
// would refuse (a *wire.RejectedError naming the tag and why) without
// using the command ring.
func Check(tags []tag.Info, c *wire.Command) error {
	if s := wire.CheckTagWrite(tags, c.Tag, c.Value); s != wire.Applied {
		if c.Tag < 0 || int(c.Tag) >= len(tags) {
			return &wire.RejectedError{Result: wire.Result{Status: s}, Tag: fmt.Sprintf("tag #%d", c.Tag)}
		}
		return wire.Refuse(&tags[c.Tag], c.Value, s)
	}
	return nil
}
