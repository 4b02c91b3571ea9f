package supervisor

import "time"

// Clock is the time source of the watchdog, the restart policy and the
// step runner. RealClock is the wall clock; supervisortest.Clock is moved by
// hand in tests.
type Clock interface {
	Now() time.Time
	// NewTimer delivers the time on the timer's channel once d has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer; Stop releases it early.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// RealClock is the system clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
