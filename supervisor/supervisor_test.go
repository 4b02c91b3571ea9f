package supervisor_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

const period = 10 * time.Millisecond

type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) PartitionUp(name string) { e.add("up " + name) }
func (e *events) PartitionDown(name string, f supervisor.Fault) {
	e.add("down " + name + ": " + f.Reason)
}
func (e *events) add(s string) { e.mu.Lock(); e.list = append(e.list, s); e.mu.Unlock() }
func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

type rig struct {
	t      *testing.T
	clk    *supervisortest.Clock
	hb     *supervisortest.Heartbeat
	part   *supervisortest.Partition
	ev     *events
	sup    *supervisor.Supervisor
	ctx    context.Context
	cancel context.CancelFunc
	done   chan error
}

func newRig(t *testing.T, mod func(*supervisor.Options)) *rig {
	t.Helper()
	r := &rig{t: t, clk: supervisortest.NewClock(time.Unix(1_700_000_000, 0)), hb: &supervisortest.Heartbeat{},
		part: &supervisortest.Partition{}, ev: &events{}, done: make(chan error, 1)}
	o := supervisor.Options{Name: "p1", Partition: r.part, Heartbeat: r.hb, Period: period, Missed: 3,
		StartTimeout: 100 * time.Millisecond, Clock: r.clk, Listeners: []supervisor.Listener{r.ev},
		Policy: supervisor.RestartPolicy{Initial: 100 * time.Millisecond, Max: time.Second, Burst: 3, Window: time.Minute}}
	if mod != nil {
		mod(&o)
	}
	sup, err := supervisor.New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.sup = sup
	r.ctx, r.cancel = context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(r.cancel)
	go func() { r.done <- sup.Run(r.ctx) }()
	return r
}

// advance waits until the supervisor waits on a timer, then moves time by d.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	if !r.clk.BlockUntil(r.ctx, 1) {
		r.t.Fatalf("supervisor never waited on the clock (state %v)", r.sup.Status().State)
	}
	r.clk.Advance(d)
}

// waitState polls until the supervisor reaches st (bounded by the rig's context).
func (r *rig) waitState(st supervisor.State) {
	r.t.Helper()
	for r.sup.Status().State != st {
		select {
		case <-r.ctx.Done():
			r.t.Fatalf("state %v, want %v", r.sup.Status().State, st)
		case <-time.After(time.Millisecond):
		}
	}
}

// bringUp beats once and lets the supervisor see it.
func (r *rig) bringUp() {
	r.t.Helper()
	r.waitState(supervisor.Starting)
	// Beat only once the supervisor took its baseline reading and waits.
	if !r.clk.BlockUntil(r.ctx, 1) {
		r.t.Fatal("supervisor never waited for the first heartbeat")
	}
	r.hb.Beat()
	r.advance(period)
	r.waitState(supervisor.Running)
}

func TestSupervisorMissedHeartbeatsFaultAndRestart(t *testing.T) {
	r := newRig(t, nil)
	r.bringUp()
	for range 5 {
		r.hb.Beat()
		r.advance(period)
	}
	r.clk.BlockUntil(r.ctx, 1) // the supervisor handled the last tick
	if st := r.sup.Status(); st.State != supervisor.Running || st.Cycle != 6 || st.Uptime != 5*period {
		t.Fatalf("status %+v", st)
	}
	// The heartbeat stops: 3 periods pass quietly, the 4th declares the fault.
	for range 4 {
		r.advance(period)
	}
	r.waitState(supervisor.Restarting)
	st := r.sup.Status()
	if st.LastFault == nil || !strings.Contains(st.LastFault.Reason, "heartbeat stopped at cycle 6") {
		t.Fatalf("last fault %+v", st.LastFault)
	}
	if got := r.part.Calls(); strings.Join(got, ",") != "start,kill,stop" {
		t.Fatalf("backend calls %q", got)
	}
	r.advance(100 * time.Millisecond) // backoff
	r.bringUp()
	if n := r.sup.Status().Restarts; n != 1 {
		t.Fatalf("restarts %d", n)
	}
	ev := r.ev.get()
	if len(ev) != 3 || ev[0] != "up p1" || !strings.HasPrefix(ev[1], "down p1: heartbeat stopped") || ev[2] != "up p1" {
		t.Fatalf("events %q", ev)
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := r.sup.Status().State; st != supervisor.Stopped {
		t.Fatalf("after stop: %v", st)
	}
	if ev := r.ev.get(); len(ev) != 4 || ev[3] != "down p1: stopped" {
		t.Fatalf("events after stop %q", ev)
	}
}

func TestSupervisorBackoffGrowsThenCrashLoop(t *testing.T) {
	r := newRig(t, nil)
	delay := 100 * time.Millisecond
	for i := range 3 {
		r.bringUp()
		r.part.Exit(supervisor.Exit{Code: -1, Signal: "killed"})
		r.waitState(supervisor.Restarting)
		// One tick short of the backoff does not restart.
		r.advance(delay - time.Millisecond)
		if r.part.Starts() != i+1 {
			t.Fatalf("restarted before the backoff of %v", delay)
		}
		r.advance(time.Millisecond)
		delay *= 2
	}
	r.bringUp()
	r.part.Exit(supervisor.Exit{Code: 2})
	r.waitState(supervisor.CrashLoop)
	if st := r.sup.Status(); st.Restarts != 3 || !strings.Contains(st.LastFault.Reason, "exit status 2") {
		t.Fatalf("status %+v", st)
	}
	r.sup.Reset()
	r.bringUp()
	if r.part.Starts() != 5 {
		t.Fatalf("starts %d after reset", r.part.Starts())
	}
}

func TestSupervisorDoNotRestartExitCode(t *testing.T) {
	r := newRig(t, func(o *supervisor.Options) { o.ExitOnGiveUp = true })
	r.waitState(supervisor.Starting)
	r.part.Exit(supervisor.Exit{Code: supervisor.ExitDoNotRestart})
	err := <-r.done
	if !errors.Is(err, supervisor.ErrDoNotRestart) {
		t.Fatalf("Run = %v, want ErrDoNotRestart", err)
	}
	if r.part.Starts() != 1 {
		t.Fatalf("restarted %d times", r.part.Starts()-1)
	}
	// It never came up, so no down event.
	if ev := r.ev.get(); len(ev) != 0 {
		t.Fatalf("events %q", ev)
	}
}

func TestSupervisorNoFirstHeartbeat(t *testing.T) {
	r := newRig(t, nil)
	r.waitState(supervisor.Starting)
	for r.sup.Status().State == supervisor.Starting {
		r.advance(period)
	}
	r.waitState(supervisor.Restarting)
	if f := r.sup.Status().LastFault; f == nil || !strings.Contains(f.Reason, "no heartbeat") {
		t.Fatalf("fault %+v", f)
	}
}

func TestSupervisorExecutiveFaultAndStartFailure(t *testing.T) {
	r := newRig(t, nil)
	r.bringUp()
	r.hb.Set(9, wire.Faulted, nil)
	r.advance(period)
	r.waitState(supervisor.Restarting)
	if f := r.sup.Status().LastFault; !strings.Contains(f.Reason, "executive reported a fault") {
		t.Fatalf("fault %+v", f)
	}
	r.part.StartErr = errors.New("cpuset: no such CPU")
	r.advance(100 * time.Millisecond)
	for f := r.sup.Status().LastFault; !strings.Contains(f.Reason, "start failed: cpuset: no such CPU"); f = r.sup.Status().LastFault {
		select {
		case <-r.ctx.Done():
			t.Fatalf("fault %+v", f)
		case <-time.After(time.Millisecond):
		}
	}
}

func TestLifecycleReap(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	now := time.Unix(1, 0)
	clock := supervisortest.NewClock(now)
	l := supervisor.Lifecycle{Backend: "test", Clock: clock}
	for script, want := range map[string]supervisor.Exit{
		"exit 3":     {Code: 3, Time: now},
		"kill -9 $$": {Code: -1, Signal: "killed", Time: now},
	} {
		cmd := exec.Command("sh", "-c", script)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var seen supervisor.Exit
		l.Reap(cmd, func(e supervisor.Exit) { seen = e })
		got, err := l.Wait(supervisortest.Context(t, 10*time.Second))
		if err != nil || got != want || seen != want {
			t.Errorf("%s: %+v (onExit saw %+v), %v; want %+v", script, got, seen, err, want)
		}
	}
}

// A partition an earlier supervisor started is watched without a start,
// and restarted normally once it fails.
func TestSupervisorWatchesAdoptedPartition(t *testing.T) {
	part := &supervisortest.Partition{}
	part.Adopt()
	r := newRig(t, func(o *supervisor.Options) { o.Partition, o.Adopted = part, true })
	r.part = part
	r.bringUp()
	if got := strings.Join(part.Calls(), ","); got != "adopt" {
		t.Fatalf("backend calls %q, want only the adoption", got)
	}
	part.Exit(supervisor.Exit{Code: -1, Signal: "killed"})
	r.waitState(supervisor.Restarting)
	r.advance(100 * time.Millisecond)
	r.bringUp()
	if got := strings.Join(part.Calls(), ","); got != "adopt,stop,start" {
		t.Fatalf("backend calls %q", got)
	}
}

// When the partition is declared faulted, its program is fenced (killed
// and seen to end) before the supervisor drives the safe state, and the
// safe state is driven before the host preparation is undone.
func TestSupervisorDrivesSafeStateAfterFencing(t *testing.T) {
	var part *supervisortest.Partition
	safe := func(ctx context.Context, p supervisor.Partition) error {
		part.Note("safe")
		return nil
	}
	r := newRig(t, func(o *supervisor.Options) { o.SafeState = safe })
	part = r.part
	r.bringUp()
	if o := r.sup.Status().Outputs; o.Driver != "partition" {
		t.Fatalf("outputs while running: %+v", o)
	}
	for r.sup.Status().State == supervisor.Running { // the heartbeat stops
		r.advance(period)
	}
	r.waitState(supervisor.Restarting)
	if got := strings.Join(part.Calls(), ","); got != "start,kill,safe,stop" {
		t.Fatalf("calls %q, want the kill, then the safe state, then the stop", got)
	}
	if o := r.sup.Status().Outputs; o.Driver != "supervisor" || !o.Safe {
		t.Fatalf("outputs while restarting: %+v", o)
	}
	// A program that exits by itself needs no kill.
	r.advance(100 * time.Millisecond)
	r.bringUp()
	part.Exit(supervisor.Exit{Code: 3})
	r.waitState(supervisor.Restarting)
	if got := strings.Join(part.Calls(), ","); got != "start,kill,safe,stop,start,safe,stop" {
		t.Fatalf("calls %q", got)
	}
	r.cancel()
	<-r.done
}

func TestSupervisorSafeStateFailureIsReported(t *testing.T) {
	r := newRig(t, func(o *supervisor.Options) {
		o.SafeState = func(context.Context, supervisor.Partition) error {
			return errors.New("device tank: connection refused")
		}
	})
	r.bringUp()
	r.part.Exit(supervisor.Exit{Code: 3})
	r.waitState(supervisor.Restarting)
	if o := r.sup.Status().Outputs; o.Driver != "supervisor" || o.Safe || !strings.Contains(o.Detail, "connection refused") {
		t.Fatalf("outputs %+v", o)
	}
}
