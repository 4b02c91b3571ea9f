package supervisor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/wire"
)

func TestWatchdog(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := Watchdog{Period: 10 * time.Millisecond, Missed: 3}
	w.Reset(t0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	steps := []struct {
		ms    int
		cycle uint64
		state wire.State
		err   error
		fault string
	}{
		{10, 1, wire.Running, nil, ""},
		{20, 2, wire.Running, nil, ""},
		{30, 2, wire.Running, nil, ""},
		{50, 2, wire.Running, nil, ""},
		{60, 3, wire.Running, nil, ""}, // moved again just in time
		{80, 3, wire.Running, errors.New("torn read"), ""},
		{91, 3, wire.Running, errors.New("torn read"), "unreadable"},
	}
	for _, s := range steps {
		got := w.Observe(at(s.ms), s.cycle, s.state, s.err)
		if (s.fault == "") != (got == "") || !strings.Contains(got, s.fault) {
			t.Fatalf("at %dms: fault %q, want %q", s.ms, got, s.fault)
		}
	}
	w.Reset(t0)
	w.Observe(at(1), 5, wire.Running, nil)
	if got := w.Observe(at(32), 5, wire.Running, nil); !strings.Contains(got, "stopped at cycle 5") {
		t.Fatalf("stalled counter: %q", got)
	}
	if got := w.Observe(at(33), 6, wire.Faulted, nil); got == "" {
		t.Fatal("executive fault not reported")
	}
}

func TestWatchdogObserveAllocatesNothing(t *testing.T) {
	w := Watchdog{Period: time.Millisecond, Missed: 10}
	now := time.Unix(0, 0)
	w.Reset(now)
	var cycle uint64
	allocs := testing.AllocsPerRun(1000, func() {
		cycle++
		now = now.Add(time.Millisecond)
		if w.Observe(now, cycle, wire.Running, nil) != "" {
			t.Fatal("unexpected fault")
		}
	})
	if allocs != 0 {
		t.Fatalf("Observe allocates %v per call", allocs)
	}
}

func TestRestartPolicy(t *testing.T) {
	tr := restartTracker{p: RestartPolicy{Initial: 100 * time.Millisecond, Max: 500 * time.Millisecond, Burst: 5, Window: time.Minute}}
	now := time.Unix(0, 0)
	want := []time.Duration{100, 200, 400, 500, 500}
	for i, w := range want {
		d, crash := tr.next(now, time.Time{})
		if crash || d != w*time.Millisecond {
			t.Fatalf("restart %d: delay %v crash %v, want %v", i+1, d, crash, w*time.Millisecond)
		}
		now = now.Add(time.Second)
	}
	if _, crash := tr.next(now, time.Time{}); !crash {
		t.Fatal("6th restart within a minute is not a crash loop")
	}
	// Once the old restarts leave the window, and after a stable run, the backoff starts over.
	now = now.Add(2 * time.Minute)
	d, crash := tr.next(now, now.Add(-time.Minute))
	if crash || d != 100*time.Millisecond {
		t.Fatalf("after a stable run: delay %v crash %v", d, crash)
	}
}

func BenchmarkWatchdogObserve(b *testing.B) {
	w := Watchdog{Period: time.Millisecond, Missed: 10}
	now := time.Unix(0, 0)
	w.Reset(now)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Millisecond)
		w.Observe(now, uint64(i+1), wire.Running, nil)
	}
}

func TestHeartbeatFromConfig(t *testing.T) {
	cfg := &configs.Config{Tasks: []configs.Task{{Period: configs.Duration(10 * time.Millisecond)}, {Period: configs.Duration(250 * time.Microsecond)}},
		Watchdog: configs.Watchdog{Heartbeat: 4}}
	if p, n := HeartbeatFromConfig(cfg); p != 250*time.Microsecond || n != 4 {
		t.Fatalf("%v × %d", p, n)
	}
	if p, n := HeartbeatFromConfig(&configs.Config{}); p != 10*time.Millisecond || n != 10 {
		t.Fatalf("defaults %v × %d", p, n)
	}
}
