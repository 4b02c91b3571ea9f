package process_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/process"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

// stamps records when the partition went up and down.
type stamps struct {
	mu   sync.Mutex
	up   []time.Time
	down []time.Time
	ups  chan struct{}
	dns  chan struct{}
}

func newStamps() *stamps { return &stamps{ups: make(chan struct{}, 16), dns: make(chan struct{}, 16)} }

func (s *stamps) PartitionUp(string) {
	s.mu.Lock()
	s.up = append(s.up, time.Now())
	s.mu.Unlock()
	s.ups <- struct{}{}
}

func (s *stamps) PartitionDown(string, supervisor.Fault) {
	s.mu.Lock()
	s.down = append(s.down, time.Now())
	s.mu.Unlock()
	s.dns <- struct{}{}
}

func await(t *testing.T, c context.Context, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-c.Done():
		t.Fatalf("no %s event", what)
	}
}

// superviseReal runs a real supervisor (wall clock) over a real child.
func superviseReal(t *testing.T, mode string, period time.Duration) (*supervisor.Supervisor, *process.Partition, *stamps, context.CancelFunc, chan error) {
	t.Helper()
	p, hb := newPartition(t, v1Host(), supervisortest.NewNet(nil), mode, func(c *process.Config) { c.NICs, c.CPUs = nil, nil })
	st := newStamps()
	sup, err := supervisor.New(supervisor.Options{Name: "p1", Partition: p, Heartbeat: hb, Period: period, Missed: 10,
		StartTimeout: 10 * time.Second, Listeners: []supervisor.Listener{st},
		Policy: supervisor.RestartPolicy{Initial: time.Millisecond, Burst: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	done := make(chan error, 1)
	go func() { done <- sup.Run(c) }()
	t.Cleanup(func() { cancel(); <-done })
	return sup, p, st, cancel, done
}

// TestFaultDetectionAndRestartTimes kills the real child with SIGKILL and
// prints how long the supervisor took to declare it down (exit seen through
// Wait) and to have it running again (first heartbeat of the new child),
// and the same for a child that hangs (heartbeat stops, process stays).
// Figures are printed, not asserted: run with -v.
func TestFaultDetectionAndRestartTimes(t *testing.T) {
	const period = time.Millisecond
	sup, p, st, _, _ := superviseReal(t, "run", period)
	c := ctx(t)
	await(t, c, st.ups, "first up")
	const rounds = 10
	var detect, restart time.Duration
	for range rounds {
		pid := p.Info().PID
		t0 := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		await(t, c, st.dns, "down")
		await(t, c, st.ups, "up")
		st.mu.Lock()
		detect += st.down[len(st.down)-1].Sub(t0)
		restart += st.up[len(st.up)-1].Sub(t0)
		st.mu.Unlock()
	}
	if got := sup.Status(); got.Restarts != rounds || got.State != supervisor.Running {
		t.Fatalf("status %+v", got)
	}
	t.Logf("kill -9: fault declared after %v, running again after %v (mean of %d, backoff 1ms, heartbeat period %v)",
		detect/rounds, restart/rounds, rounds, period)
}

func TestHungChildDeclaredAfterMissedHeartbeats(t *testing.T) {
	const period = 2 * time.Millisecond
	sup, _, st, _, _ := superviseReal(t, "hang", period)
	c := ctx(t)
	await(t, c, st.ups, "up")
	t0 := time.Now()
	await(t, c, st.dns, "down")
	f := sup.Status().LastFault
	if f == nil || !strings.Contains(f.Reason, "heartbeat stopped") {
		t.Fatalf("fault %+v", f)
	}
	t.Logf("hung child (heartbeat stops, process lives): declared faulted %v after its first heartbeat (limit 10 × %v)", time.Since(t0), period)
}

func TestCrashingChildEndsInCrashLoop(t *testing.T) {
	// Full isolation on the fake host: every restart re-creates the cgroup,
	// the IRQ moves and the namespace, and giving up leaves the host clean.
	fs, net := v1Host(), supervisortest.NewNet(map[string]string{"eth1": "192.168.7.1/24"})
	before := snapshot(fs, net)
	p, hb := newPartition(t, fs, net, "crash", nil)
	sup, err := supervisor.New(supervisor.Options{Name: "p1", Partition: p, Heartbeat: hb, Period: 20 * time.Millisecond,
		ExitOnGiveUp: true, Policy: supervisor.RestartPolicy{Initial: time.Millisecond, Burst: 3, Window: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	err = sup.Run(ctx(t))
	if !errors.Is(err, supervisor.ErrCrashLoop) {
		t.Fatalf("Run = %v, want ErrCrashLoop", err)
	}
	if st := sup.Status(); st.Restarts != 3 || st.State != supervisor.CrashLoop || !strings.Contains(st.LastFault.Reason, "exit status 3") {
		t.Fatalf("status %+v", st)
	}
	if after := snapshot(fs, net); after != before {
		t.Fatalf("host not clean after the crash loop:\nbefore %s\nafter  %s", before, after)
	}
	if n := strings.Count(strings.Join(net.Log(), "\n"), "newns mkrt-p1"); n != 4 {
		t.Fatalf("namespace created %d times for 4 starts", n)
	}
}

func TestConfigErrorIsNotRestarted(t *testing.T) {
	p, hb := newPartition(t, v1Host(), supervisortest.NewNet(nil), "config", func(c *process.Config) { c.NICs, c.CPUs = nil, nil })
	sup, _ := supervisor.New(supervisor.Options{Name: "p1", Partition: p, Heartbeat: hb, Period: time.Millisecond, ExitOnGiveUp: true})
	if err := sup.Run(ctx(t)); !errors.Is(err, supervisor.ErrDoNotRestart) {
		t.Fatalf("Run = %v", err)
	}
	if lines := p.Console(); len(lines) == 0 || !strings.Contains(lines[len(lines)-1], "config error") {
		t.Fatalf("console %q", lines)
	}
}
