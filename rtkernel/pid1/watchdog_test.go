package pid1

import (
	"errors"
	"testing"
	"time"
)

func TestParseWatchdog(t *testing.T) {
	for in, want := range map[string]time.Duration{"3": 3 * time.Second, "3s": 3 * time.Second, "1500ms": 1500 * time.Millisecond} {
		if got, err := ParseWatchdog(in); err != nil || got != want {
			t.Errorf("ParseWatchdog(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "500ms", "-2", "soon"} {
		if _, err := ParseWatchdog(bad); err == nil {
			t.Errorf("ParseWatchdog(%q): want an error", bad)
		}
	}
}

// fakeDog records what the feeder did to the device.
type fakeDog struct {
	fed              int
	disarmed, closed bool
	failKeepalive    error
}

func (d *fakeDog) Keepalive() error {
	if d.failKeepalive != nil {
		return d.failKeepalive
	}
	d.fed++
	return nil
}
func (d *fakeDog) Disarm() error { d.disarmed = true; return nil }
func (d *fakeDog) Close() error  { d.closed = true; return nil }

// The feeder arms on the first cycle, feeds only while the counter moves,
// and disarms only on a clean stop.
func TestFeederFeedsOnlyWhileCycling(t *testing.T) {
	var cycle uint64
	readable := false
	dog := &fakeDog{}
	arms := 0
	f := &Feeder{
		Cycle: func() (uint64, bool) { return cycle, readable },
		Arm:   func() (Watchdog, error) { arms++; return dog, nil },
	}
	check := func() {
		t.Helper()
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
	}
	check() // region not attached yet
	readable = true
	check() // baseline
	check() // booting: no move, not armed
	if arms != 0 {
		t.Fatalf("armed before the first cycle")
	}
	for range 5 {
		cycle += 3
		check()
	}
	if arms != 1 || dog.fed != 5 || f.Fed() != 5 {
		t.Fatalf("armed %d times, fed %d (Fed %d); want 1 and 5", arms, dog.fed, f.Fed())
	}
	// The executive stalls: the counter stands still, nothing is fed.
	for range 10 {
		check()
	}
	if dog.fed != 5 {
		t.Fatalf("fed %d times while the executive stood still", dog.fed)
	}
	cycle++
	check()
	if dog.fed != 6 {
		t.Fatalf("not fed again once it cycled")
	}
	if err := f.Stop(false); err != nil || !dog.closed || dog.disarmed {
		t.Fatalf("stop after a failure: closed %v disarmed %v, %v; want closed and counting", dog.closed, dog.disarmed, err)
	}

	dog2 := &fakeDog{}
	f2 := &Feeder{Cycle: func() (uint64, bool) { return cycle, true }, Arm: func() (Watchdog, error) { return dog2, nil }}
	_ = f2.Check()
	cycle++
	_ = f2.Check()
	if err := f2.Stop(true); err != nil || !dog2.disarmed {
		t.Fatalf("clean stop: disarmed %v, %v; want the magic close", dog2.disarmed, err)
	}
	if err := f2.Stop(true); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestFeederReportsDeviceErrors(t *testing.T) {
	var cycle uint64
	boom := errors.New("ENOTTY")
	f := &Feeder{Cycle: func() (uint64, bool) { cycle++; return cycle, true },
		Arm: func() (Watchdog, error) { return nil, boom }}
	_ = f.Check()
	if err := f.Check(); !errors.Is(err, boom) {
		t.Fatalf("arming error %v, want %v", err, boom)
	}
	f.Arm = func() (Watchdog, error) { return &fakeDog{failKeepalive: boom}, nil }
	if err := f.Check(); !errors.Is(err, boom) {
		t.Fatalf("keepalive error %v, want %v", err, boom)
	}
}
