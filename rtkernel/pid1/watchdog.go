package pid1

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
)

// Boot parameters (mkrt.<name>=<value>) that a backend sets for mkrt-init
// besides mkrt.shm, mkrt.take and mkrt.mode.
const (
	// ParamWatchdog arms the kernel's watchdog device (/dev/watchdog) with
	// this timeout, in whole seconds ("3") or as a duration ("3s"), once
	// the executive cycles; mkrt-init feeds it only while the executive's
	// cycle counter advances. Absent: no watchdog.
	ParamWatchdog = "watchdog"
	// ParamAddress replaces the dedicated NIC's configured address (CIDR):
	// a hand-over's new guest takes partition.nics[].standby_address while
	// the running guest keeps address on the same bridge.
	ParamAddress = "address"
	// ParamTest makes the kernel fail on purpose, for the watchdog tests
	// (see TestFaults); absent, as in production, nothing is injected.
	ParamTest = "test"
)

// The faults ParamTest injects once the watchdog has been fed a few times.
const (
	// FaultHang spins at SCHED_FIFO 99 on every CPU with real-time
	// throttling off: nothing but hard interrupts runs any more — not the
	// executive, not the watchdog feeder, not the serial console's IRQ
	// thread. The guest is hung.
	FaultHang = "hang"
	// FaultStall spins on the isolated (real-time) CPUs only: the
	// executive stops cycling while the rest of the kernel runs, so the
	// feeder sees the cycle counter stand still and stops feeding.
	FaultStall = "stall"
	// FaultPanic crashes the kernel through /proc/sysrq-trigger ('c').
	FaultPanic = "panic"
)

// TestFaults lists the values ParamTest takes.
var TestFaults = []string{FaultHang, FaultStall, FaultPanic}

// ParseWatchdog reads ParamWatchdog's value: whole seconds or a Go
// duration, at least one second (a watchdog counts in seconds).
func ParseWatchdog(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if n, aerr := strconv.Atoi(v); aerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("pid1: bad mkrt.%s=%q (want a timeout of at least 1s, e.g. 3 or 3s)", ParamWatchdog, v)
	}
	return d, nil
}

// Watchdog is a started watchdog device (/dev/watchdog on Linux).
type Watchdog interface {
	// Keepalive restarts the countdown.
	Keepalive() error
	// Disarm stops the watchdog and closes the device (the magic close).
	Disarm() error
	// Close closes the device and leaves the watchdog counting: it fires
	// unless the kernel powers off first.
	Close() error
}

// Feeder keeps a watchdog from firing while the control program makes
// progress, and only then: it feeds the device when the executive's cycle
// counter has moved since the last look. A hung kernel, a stalled
// executive and a hung feeder all look the same to the watchdog — no
// feed — and it fires.
//
// The watchdog is armed (opened) on the first move of the counter, so a
// slow boot cannot trip it; until the first cycle the supervisor's start
// timeout guards the partition.
type Feeder struct {
	// Arm opens and so starts the watchdog.
	Arm func() (Watchdog, error)
	// Cycle reads the executive's cycle counter; false while it cannot
	// be read (the region not attached yet).
	Cycle func() (uint64, bool)
	Log   *slog.Logger

	dog  Watchdog
	last uint64
	seen bool
	fed  atomic.Uint64
}

// Check looks at the cycle counter once: its first reading is the
// baseline, its first move arms the watchdog, and each move feeds it. A
// counter that stands still feeds nothing.
func (f *Feeder) Check() error {
	c, ok := f.Cycle()
	if !ok {
		return nil
	}
	if !f.seen {
		f.seen, f.last = true, c
		return nil
	}
	if c == f.last {
		return nil
	}
	f.last = c
	if f.dog == nil {
		d, err := f.Arm()
		if err != nil {
			return err
		}
		f.dog = d
		f.log().Info("watchdog armed", "cycle", c)
	}
	if err := f.dog.Keepalive(); err != nil {
		return err
	}
	f.fed.Add(1)
	return nil
}

// Fed counts the keepalives so far.
func (f *Feeder) Fed() uint64 { return f.fed.Load() }

// Run checks every interval until ctx ends or a check fails (logged;
// an armed watchdog then fires, which is the point).
func (f *Feeder) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.Check(); err != nil {
			f.log().Error("watchdog feeding stopped", "err", err)
			return
		}
	}
}

// Stop ends the feeding after Run returned: a clean stop disarms the
// watchdog (magic close); after a failure the watchdog keeps counting and
// fires unless the power-off comes first.
func (f *Feeder) Stop(clean bool) error {
	if f.dog == nil {
		return nil
	}
	d := f.dog
	f.dog = nil
	if clean {
		return d.Disarm()
	}
	return d.Close()
}

func (f *Feeder) log() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
}
