package rt

import (
	"time"
	_ "unsafe" // for go:linkname
)

// nanotime is the runtime's monotonic clock: CLOCK_MONOTONIC read through
// the vDSO on Linux, without the system call x/sys/unix.ClockGettime makes.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Monotonic is the real clock of the cyclic loop: CLOCK_MONOTONIC, and
// absolute-deadline sleeps with clock_nanosleep(TIMER_ABSTIME) on Linux.
// The zero value is ready to use.
type Monotonic struct{}

// Now reads CLOCK_MONOTONIC. Hot path: allocation-free, no system call.
func (Monotonic) Now() time.Duration { return time.Duration(nanotime()) }

// SleepUntil sleeps until CLOCK_MONOTONIC reaches t, retrying when a signal
// interrupts the sleep. Returns at once when t has passed. Hot path.
func (Monotonic) SleepUntil(t time.Duration) { sleepUntil(t) }

// Nap sleeps until t like SleepUntil but through the Go runtime's
// system-call path, so that the runtime need not wait for the sleeper when
// it stops the world or visits every P (a raw sleep holds its P until it
// wakes, and the runtime preempts every other running goroutine over and
// over meanwhile). For long waits off a cycle's path: a relay's thread off
// duty.
func Nap(t time.Duration) { nap(t) }
