package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/shm"
)

// A hand-over between kernels crosses clock domains: the running executive
// publishes its cycle grid and schedules the switch on its kernel's
// CLOCK_MONOTONIC, and a second kernel (a VM guest, a multikernel instance,
// a Jailhouse cell) counts its own from its own boot. Each executive
// publishes the boot ID of its kernel as the identity of its clock. When
// the IDs match the times are used as they are; otherwise the taking side
// estimates the offset from the running executive's heartbeats, which
// carry the time each cycle ended, and translates every time that crosses
// (the grid, the take time, the baton, the reported switch) through a
// clockLink.
//
// The estimate watches heartbeats change and keeps the smallest gap
// between the heartbeat's time and the moment it was seen: that is the
// offset plus the shortest delay of a store reaching the other kernel, so
// the estimate makes the new executive's clock run late by that delay.
//
// Either way the link puts the new executive a lead (a twentieth of the
// period, at least 20µs) ahead of the grid. Both executives wake for
// the same cycle; the new one takes the baton at the start of the cycle
// and the old one tries to keep it only after running its blocks, so a new
// executive that wakes even slightly late (a busy CPU, an estimate's
// delay) loses the race and the switch slips a cycle, every cycle alike.
// Waking a little early is harmless: the state was offered at the end of
// the cycle before. The new program's cycles then run the lead ahead of
// the old grid, which the plant cannot tell from jitter.

// bootIDPath is where Linux names the running kernel's boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// ownClockID is this kernel's boot ID, zero when it cannot be read (a
// zero ID never matches, so the offset is estimated: safe).
func ownClockID() shm.ClockID {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return shm.ClockID{}
	}
	id, err := shm.ParseClockID(string(b))
	if err != nil {
		return shm.ClockID{}
	}
	return id
}

// Lead is how far ahead of the running executive's cycle grid an
// executive taking over from it runs, for a first task of period.
func Lead(period time.Duration) time.Duration {
	// Proportional: the jitter that can make it late (a busy CPU, a
	// hypervisor's scheduling of two guests) grows with how long a
	// platform's cycles are, not with a fixed bound.
	return max(period/20, 20*time.Microsecond)
}

// clockLink maps this executive's clock to the clock of the executive it
// takes over from: theirs = ours + off.
type clockLink struct {
	off int64
	// estimated is false for a shared clock (off is the lead).
	estimated bool
	// beats is how many heartbeats the estimate saw and spread how much
	// their delays varied (a noisy link gives a coarse estimate).
	beats  int
	spread time.Duration
	lead   time.Duration
}

func (l clockLink) theirs(ours int64) int64 { return ours + l.off }
func (l clockLink) ours(theirs int64) int64 { return theirs - l.off }

func (l clockLink) String() string {
	if !l.estimated {
		return fmt.Sprintf("shared clock, lead %v", l.lead)
	}
	return fmt.Sprintf("offset %v estimated from %d heartbeats (delays spread over %v), lead %v", time.Duration(l.off), l.beats, l.spread, l.lead)
}

// Estimation bounds: watch up to estimateBeats heartbeats, for at least
// estimateMinBeats, within estimateWindow.
const (
	estimateBeats    = 24
	estimateMinBeats = 3
	estimateWindow   = 3 * time.Second
)

// linkClocks relates this kernel's clock (now, identity own) to that of
// the executive publishing from; period is the first task's period. With
// different clocks it polls from's heartbeat for up to estimateWindow, on
// the calling thread, before the executive starts.
func linkClocks(ctx context.Context, from *shm.HandOver, own shm.ClockID, now func() int64, period time.Duration) (clockLink, error) {
	lead := Lead(period)
	if theirs := from.ClockID(); !own.IsZero() && theirs == own {
		return clockLink{off: int64(lead), lead: lead}, nil
	}
	deadline := now() + int64(estimateWindow)
	last := from.Beat()
	best, worst, n := int64(0), int64(0), 0
	for spins := 0; n < estimateBeats && now() < deadline; spins++ {
		b := from.Beat()
		if b == last {
			if spins%4096 == 0 && ctx.Err() != nil {
				return clockLink{}, ctx.Err()
			}
			continue
		}
		d := now() - b
		if n == 0 || d < best {
			best = d
		}
		if n == 0 || d > worst {
			worst = d
		}
		last = b
		n++
		if period >= 2*time.Millisecond {
			// The next beat is a period away: sleep most of it instead of
			// spinning (the guest's housekeeping CPU has other work).
			time.Sleep(period * 3 / 4)
		}
	}
	if n < estimateMinBeats {
		return clockLink{}, fmt.Errorf("app: hand-over: the running partition's heartbeat changed %d times in %v: too few to relate the two kernels' clocks (is it running?)", n, estimateWindow)
	}
	// best = ours - theirs + delay: theirs = ours - best (late by the
	// delay), moved ahead by the lead.
	return clockLink{off: int64(lead) - best, estimated: true, beats: n, spread: time.Duration(worst - best), lead: lead}, nil
}

// linkedBaton is the hand-over area of an executive on another clock, seen
// through a clockLink: the grid and the baton's times in this executive's
// clock.
type linkedBaton struct {
	executive.Baton
	link clockLink
}

// Grid is the running executive's grid on this clock.
func (b linkedBaton) Grid() (origin, period int64, ok bool) {
	origin, period, ok = b.Baton.Grid()
	return b.link.ours(origin), period, ok
}

// Take takes the cycle scheduled at sched (this clock) and returns the
// cycle the state follows on this clock.
func (b linkedBaton) Take(sched int64, dst []byte) (int64, []byte, bool) {
	after, blob, ok := b.Baton.Take(b.link.theirs(sched), dst)
	return b.link.ours(after), blob, ok
}
