package supervisor

import (
	"fmt"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/wire"
)

// Watchdog decides from successive heartbeat readings whether a partition
// is alive. It is plain data driven by Observe; the Supervisor calls it once
// per period. Not safe for concurrent use.
type Watchdog struct {
	// Period is the heartbeat period (the fastest task's period).
	Period time.Duration
	// Missed is how many periods without a new cycle make a fault.
	Missed int

	last     uint64
	lastSeen time.Time
	started  bool
}

// Reset starts watching afresh at now (after a start).
func (w *Watchdog) Reset(now time.Time) {
	w.last, w.lastSeen, w.started = 0, now, false
}

// Observe records one heartbeat reading taken at now and returns a non-empty
// fault reason when the partition is to be declared faulted: the executive
// reported a fault, or the cycle counter did not move for Missed periods
// (a read error counts as no movement).
//
// Hot path: called every period; allocates only when it declares a fault.
func (w *Watchdog) Observe(now time.Time, cycle uint64, state wire.State, err error) string {
	if err == nil && state == wire.Faulted {
		return "executive reported a fault"
	}
	if err == nil && (!w.started || cycle != w.last) {
		w.started = true
		w.last, w.lastSeen = cycle, now
		return ""
	}
	limit := w.Limit()
	if now.Sub(w.lastSeen) > limit {
		if err != nil {
			return fmt.Sprintf("heartbeat unreadable for %v: %v", limit, err)
		}
		return fmt.Sprintf("heartbeat stopped at cycle %d for %v (%d periods of %v)", w.last, now.Sub(w.lastSeen), w.Missed, w.Period)
	}
	return ""
}

// Limit is how long the heartbeat may stand still.
func (w *Watchdog) Limit() time.Duration {
	n := w.Missed
	if n <= 0 {
		n = 10
	}
	return time.Duration(n) * w.Period
}

// HeartbeatFromConfig returns the heartbeat period (the fastest task's
// period; 10ms when the config has no task) and the missed periods that
// declare a fault (config watchdog.heartbeat, default 10).
func HeartbeatFromConfig(cfg *configs.Config) (period time.Duration, missed int) {
	for _, t := range cfg.Tasks {
		if p := t.Period.D(); p > 0 && (period == 0 || p < period) {
			period = p
		}
	}
	if period == 0 {
		period = 10 * time.Millisecond
	}
	missed = cfg.Watchdog.Heartbeat
	if missed <= 0 {
		missed = 10
	}
	return period, missed
}
