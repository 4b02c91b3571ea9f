package app

import (
	"context"
	"time"

	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/shm"
)

// The text of a shm.CmdHandOver command; its Value is the hand-over time
// on CLOCK_MONOTONIC in nanoseconds.
const (
	// HandOverRelease asks the running executive to hand its outputs over
	// from the first cycle starting at or after the time.
	HandOverRelease = "release"
	// HandOverTake arms a standby executive to take them at that cycle.
	HandOverTake = "take"
)

// reportHandOver publishes the executive's hand-over counters in its
// region for the supervisor, until ctx ends.
func reportHandOver(ctx context.Context, e *executive.Executive, h *shm.HandOver, link *clockLink) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		h.SetCounters(handOverCounters(e.Status().HandOver, link))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// handOverCounters are s as published. The switch time is on the releasing
// executive's clock: a taking executive (link set: it started on standby)
// translates its own until it releases in turn.
func handOverCounters(s executive.HandOverStatus, link *clockLink) shm.HandOverCounters {
	if link != nil && s.Switch != 0 && (s.Mode == executive.Driving || s.Mode == executive.Standby) {
		s.Switch = time.Duration(link.theirs(int64(s.Switch)))
	}
	return shm.HandOverCounters{Mode: shm.HandOverMode(s.Mode), Driven: s.Driven, Standby: s.Standby, Released: s.Released,
		Retries: s.Retries, Missed: s.Missed, Switch: int64(s.Switch),
		Blocks: uint64(s.Blocks.Transferred)<<32 | uint64(s.Blocks.Fresh&0xffff)<<16 | uint64(s.Blocks.Dropped&0xffff)}
}
