// Package supervisortest holds fakes for the supervisor's seams: a clock
// moved by hand, a scripted heartbeat, a partition backend that records
// calls, an in-memory /sys and /proc tree with injectable errors, a network
// namespace recorder and a control-socket controller, and FailEachStep,
// the check that a backend unwinds from a failure in any step. Tests of
// the supervisor, its backends and its users (the bridge, the CLI) build
// on them. Nothing here needs privileges.
package supervisortest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/mkrt/mkrt/supervisor"
)

// Clock is a manual clock: time moves only by Advance. It implements
// supervisor.Clock.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	changed chan struct{}
	nextID  uint64
}

type waiter struct {
	at time.Time
	ch chan time.Time
	id uint64
}

// timer is one pending After; Stop removes it from the clock.
type timer struct {
	c  *Clock
	ch chan time.Time
	id uint64
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, w := range t.c.waiters {
		if w.id == t.id {
			t.c.waiters = append(t.c.waiters[:i], t.c.waiters[i+1:]...)
			t.c.notifyLocked()
			return true
		}
	}
	return false
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires once the clock has been advanced by d.
// It implements supervisor.Clock (the return type is the interface's
// Timer, satisfied structurally).
func (c *Clock) NewTimer(d time.Duration) supervisor.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	t := &timer{c: c, ch: make(chan time.Time, 1), id: c.nextID}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: t.ch, id: t.id})
	c.notifyLocked()
	return t
}

func (c *Clock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock by d and fires every timer that fell due, in
// order of their due time.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
	c.notifyLocked()
}

// Waiters is how many timers are pending.
func (c *Clock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// BlockUntil waits until at least n timers are pending or ctx ends; it
// returns false when ctx ended first.
func (c *Clock) BlockUntil(ctx context.Context, n int) bool {
	for {
		c.mu.Lock()
		if len(c.waiters) >= n {
			c.mu.Unlock()
			return true
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}
