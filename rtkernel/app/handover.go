package app

import (
	"context"
	"time"

	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/wire"
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
func handOverCounters(s executive.HandOverStatus, link *clockLink) wire.HandOverCounters {
	c := s.HandOverCounters
	if link != nil && c.Switch != 0 && (c.Mode == wire.Driving || c.Mode == wire.Standby) {
		c.Switch = link.theirs(c.Switch)
	}
	return c
}
