package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/wire"
)

// ErrHandOver classifies a hand-over that did not switch: the running
// partition keeps driving the outputs.
var ErrHandOver = errors.New("deploy: hand-over did not switch")

// Switched is the outcome of a hand-over switch.
type Switched struct {
	// At is the chosen switch time and Switch the scheduled start of the
	// first cycle the new partition drove (monotonic ns); Switch is later
	// than At by the cycles the old partition kept (Retries).
	At, Switch int64
	Period     time.Duration
	// Missed counts cycles neither partition drove.
	Missed uint64
	// Retries counts cycles at which the new partition found no state yet.
	Retries uint64
	// Blocks counts blocks whose state carried over, new blocks, and
	// blocks of the old program without a match.
	Blocks wire.BlockCounts
	// Took is the time from the request to the confirmed switch.
	Took time.Duration
}

// SwitchOptions tune SwitchOver.
type SwitchOptions struct {
	// Lead is how many periods ahead of now the switch is placed, so the
	// commands reach both executives first; default 10 (and at least 50ms).
	Lead int
	// Mono reads CLOCK_MONOTONIC in ns (the executives' clock).
	Mono func() int64
	// Wall measures Took; default time.Now.
	Wall func() time.Time
	// Poll is the pause between looks at the counters; default 2ms.
	Poll time.Duration
}

// SwitchOver moves the outputs from the partition of region old to the
// standby partition of region next: it picks a switch time on the old
// partition's cycle grid, arms next with take and old with release, and
// waits (bounded by ctx) until both report the switch. On any error before
// the switch the old partition keeps driving: a release nobody takes is
// harmless, and next is left on standby for the caller to stop.
func SwitchOver(ctx context.Context, old, next *shm.Reader, o SwitchOptions) (Switched, error) {
	var s Switched
	if o.Mono == nil {
		return s, fmt.Errorf("%w: no monotonic clock", ErrHandOver)
	}
	if o.Lead <= 0 {
		o.Lead = 10
	}
	if o.Wall == nil {
		o.Wall = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Millisecond
	}
	start := o.Wall()
	oh, nh := old.HandOver(), next.HandOver()
	origin, period, ok := oh.Grid()
	if !ok {
		return s, fmt.Errorf("%w: the running partition has not published its cycle grid (an older executive?)", ErrHandOver)
	}
	if _, np, ok := nh.Grid(); !ok || np != period {
		return s, fmt.Errorf("%w: the new partition runs a period of %v, the running one %v: a hand-over keeps the first task's period", ErrHandOver, time.Duration(np), time.Duration(period))
	}
	if m := nh.Counters().Mode; m != wire.Standby {
		return s, fmt.Errorf("%w: the new partition is %v, not on standby", ErrHandOver, m)
	}
	s.Period = time.Duration(period)
	lead := max(int64(o.Lead)*period, int64(50*time.Millisecond))
	now := o.Mono()
	s.At = origin + ((now+lead-origin)/period+1)*period
	// Take first: a release whose take is not armed only delays the switch.
	for _, c := range []struct {
		r    *shm.Reader
		kind wire.CommandKind
	}{{next, wire.Take}, {old, wire.Release}} {
		res, err := c.r.Do(ctx, wire.Command{Kind: c.kind, Tag: -1, Value: wire.Number(float64(s.At)), Origin: wire.NewOrigin("supervisor:hand-over")})
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			return s, fmt.Errorf("%w: %v: %w", ErrHandOver, c.kind, err)
		}
	}
	for {
		nc, oc := nh.Counters(), oh.Counters()
		if nc.Mode == wire.Driving && oc.Mode == wire.Released {
			s.Switch, s.Missed, s.Retries = nc.Switch, nc.Missed, nc.Retries
			s.Blocks = nc.Blocks
			if oc.Switch != nc.Switch {
				// Both sides saw the baton change hands at the same cycle, or
				// the old one stopped driving earlier than the new one began.
				if gap := (nc.Switch - oc.Switch) / period; gap > 0 {
					s.Missed += uint64(gap)
				}
			}
			s.Took = o.Wall().Sub(start)
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("%w: no switch by the deadline (new partition %v, running one %v): %w", ErrHandOver, nc.Mode, oc.Mode, ctx.Err())
		case <-time.After(o.Poll):
		}
	}
}
