package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mkrt/mkrt/shm/wire"
)

// Listener learns when a partition comes up (first heartbeat after a start)
// and goes down (fault, exit or stop), so the bridge can mark data stale
// (Sparkplug DDEATH/NDEATH) and re-birth. Calls come from the supervisor's
// goroutine, in order; a listener must return quickly.
type Listener interface {
	PartitionUp(name string)
	PartitionDown(name string, f Fault)
}

// ListenerFuncs adapts two functions to a Listener; a nil function is a no-op.
type ListenerFuncs struct {
	Up   func(name string)
	Down func(name string, f Fault)
}

// PartitionUp calls Up.
func (l ListenerFuncs) PartitionUp(name string) {
	if l.Up != nil {
		l.Up(name)
	}
}

// PartitionDown calls Down.
func (l ListenerFuncs) PartitionDown(name string, f Fault) {
	if l.Down != nil {
		l.Down(name, f)
	}
}

// Options configure a Supervisor. Name, Partition and Heartbeat are required.
type Options struct {
	Name      string
	Partition Partition
	Heartbeat Heartbeat
	// Period is the heartbeat period: the fastest task's period.
	Period time.Duration
	// Missed is config watchdog.heartbeat: periods without a new cycle that
	// declare the partition faulted (default 10).
	Missed int
	// StartTimeout bounds the wait for the first heartbeat (default 10s).
	StartTimeout time.Duration
	// StopTimeout bounds a graceful stop before it turns forced (default 10s).
	StopTimeout time.Duration
	Policy      RestartPolicy
	// ExitOnGiveUp makes Run return ErrCrashLoop or ErrDoNotRestart instead
	// of holding the partition down until Reset.
	ExitOnGiveUp bool
	// Adopted says the partition was started by an earlier supervisor and
	// adopted by the backend (it runs now): the first incarnation is
	// watched without a Start.
	Adopted bool
	// SafeState drives the partition's outputs to their safe values from
	// this side (the field devices, reached through the partition's
	// network) when the partition is declared faulted: after its program
	// is confirmed gone (fenced), before the host preparation is undone
	// and the restart, so two writers never drive one output. Its outcome
	// is in Status.Outputs. Nil: the outputs are left to the devices' own
	// watchdogs.
	SafeState func(ctx context.Context, p Partition) error
	// Started, when set, is called once the partition's program was
	// started (before its first heartbeat): e.g. to record it, so that a
	// supervisor dying from here on leaves it adoptable.
	Started   func()
	Listeners []Listener
	Tasks     TaskSource // optional
	Links     LinkSource // optional
	Clock     Clock      // default RealClock
	Log       *slog.Logger
}

// Supervisor keeps one partition running: start, watch, restart, give up.
type Supervisor struct {
	o       Options
	log     *slog.Logger
	clock   Clock
	tracker restartTracker
	reset   chan struct{}

	mu        sync.Mutex
	state     State
	exec      wire.State
	cycle     uint64
	restarts  int
	lastFault *Fault
	since     time.Time
	outputs   Outputs
	adopted   bool // the next incarnation is the adopted one
}

// New checks o and returns a supervisor in state Stopped.
func New(o Options) (*Supervisor, error) {
	switch {
	case o.Partition == nil:
		return nil, errors.New("supervisor: no partition backend")
	case o.Heartbeat == nil:
		return nil, errors.New("supervisor: no heartbeat source")
	case o.Period <= 0:
		return nil, fmt.Errorf("supervisor: heartbeat period %v is not positive", o.Period)
	}
	if o.Missed <= 0 {
		o.Missed = 10
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 10 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{o: o, log: o.Log.With("partition", o.Name), clock: o.Clock,
		tracker: restartTracker{p: o.Policy}, reset: make(chan struct{}, 1), adopted: o.Adopted}, nil
}

// Reset leaves the crashloop (or do-not-restart) hold: the partition is
// started again at once and the restart history is forgotten.
func (s *Supervisor) Reset() {
	select {
	case s.reset <- struct{}{}:
	default:
	}
}

// Status is a snapshot of the partition's state.
func (s *Supervisor) Status() Status {
	info := s.o.Partition.Info()
	s.mu.Lock()
	st := Status{Partition: s.o.Name, Backend: s.o.Partition.Backend(), State: s.state, Exec: s.exec,
		PID: info.PID, RT: info.RT, RTWhy: info.RTWhy, Isolation: info.Isolation,
		Restarts: s.restarts, Cycle: s.cycle, Since: s.since, Outputs: s.outputs}
	if s.lastFault != nil {
		f := *s.lastFault
		st.LastFault = &f
	}
	s.mu.Unlock()
	if st.State == Running && !st.Since.IsZero() {
		st.Uptime = s.clock.Now().Sub(st.Since)
	}
	if s.o.Tasks != nil {
		st.Tasks = s.o.Tasks.TaskStats()
	}
	if s.o.Links != nil {
		st.Links = s.o.Links.Links()
	}
	return st
}

func (s *Supervisor) setState(st State) {
	s.mu.Lock()
	prev := s.state
	s.state = st
	s.mu.Unlock()
	if prev != st {
		s.log.Info("partition state", "from", prev.String(), "to", st.String())
	}
}

// down is how one incarnation ended.
type down struct {
	reason  string
	exit    *Exit // how the program ended; nil when it was not seen to end
	stopped bool  // ctx ended: the operator stopped the partition
	fenced  bool  // the supervisor killed the program and saw it end
	wasUp   bool
	since   time.Time
}

// Run supervises the partition until ctx ends, then stops it (graceful,
// bounded by StopTimeout) and returns nil. With ExitOnGiveUp it returns
// ErrCrashLoop or ErrDoNotRestart when it gives up.
func (s *Supervisor) Run(ctx context.Context) error {
	for {
		d := s.runOnce(ctx)
		s.takeDown(ctx, d)
		if d.stopped {
			s.setState(Stopped)
			return nil
		}
		var giveUp error
		delay, crash := s.tracker.next(s.clock.Now(), d.since)
		switch {
		case d.exit != nil && !d.exit.Restartable():
			giveUp = fmt.Errorf("%w: %s", ErrDoNotRestart, d.reason)
			s.setState(Faulted)
		case crash:
			giveUp = fmt.Errorf("%w: more than %d restarts within %v; last: %s", ErrCrashLoop,
				s.o.Policy.withDefaults().Burst, s.o.Policy.withDefaults().Window, d.reason)
			s.setState(CrashLoop)
		}
		if giveUp != nil {
			s.log.Error("partition given up; waiting for a reset", "err", giveUp)
			if s.o.ExitOnGiveUp {
				return giveUp
			}
			select {
			case <-ctx.Done():
				s.setState(Stopped)
				return nil
			case <-s.reset:
				s.tracker.reset()
				continue
			}
		}
		s.setState(Restarting)
		s.log.Warn("partition restarting", "in", delay, "reason", d.reason)
		t := s.clock.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			s.setState(Stopped)
			return nil
		case <-s.reset:
			t.Stop()
			s.tracker.reset()
		case <-t.C():
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
	}
}

// runOnce starts the partition (or watches the adopted one) and returns
// when it goes down.
func (s *Supervisor) runOnce(ctx context.Context) (d down) {
	s.mu.Lock()
	adopted := s.adopted
	s.adopted = false
	s.mu.Unlock()
	if adopted {
		s.log.Info("partition adopted: watching it without a start")
	} else {
		s.setState(Preparing)
		if d := s.startPartition(ctx); d != nil {
			return *d
		}
		if s.o.Started != nil {
			s.o.Started()
		}
	}
	s.setOutputs(Outputs{Driver: "partition"})
	return s.watch(ctx)
}

// startPartition starts the partition; a non-nil result is how it went down.
func (s *Supervisor) startPartition(ctx context.Context) *down {
	if err := s.o.Partition.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return &down{stopped: true, reason: "stopped while starting"}
		}
		d := down{reason: "start failed: " + err.Error()}
		if errors.Is(err, ErrDoNotRestart) {
			d.exit = &Exit{Code: ExitDoNotRestart}
		}
		return &d
	}
	return nil
}

// watch waits for the started partition's first heartbeat, then watches
// it until it goes down; a program that did not exit by itself is killed
// and confirmed gone (fenced) before watch returns.
func (s *Supervisor) watch(ctx context.Context) (d down) {
	exited := make(chan Exit, 1)
	waitCtx, cancelWait := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if e, err := s.o.Partition.Wait(waitCtx); err == nil {
			exited <- e
		}
	}()
	defer func() {
		if d.exit == nil && !d.stopped {
			// Fence: force the program down and confirm it is gone before
			// anyone else drives its outputs; Stop undoes the rest.
			s.setState(Faulted)
			if err := s.o.Partition.Kill(); err != nil {
				s.log.Warn("partition kill failed", "err", err)
			}
			t := s.clock.NewTimer(s.o.StopTimeout)
			select {
			case e := <-exited:
				d.exit = &e
				d.fenced = true
			case <-t.C():
				s.log.Error("partition did not end after kill: outputs not taken over", "within", s.o.StopTimeout)
			}
			t.Stop()
		}
		if d.stopped {
			s.stopPartition(ctx)
		}
		cancelWait()
		wg.Wait()
	}()

	s.setState(Starting)
	wd := Watchdog{Period: s.o.Period, Missed: s.o.Missed}
	now := s.clock.Now()
	wd.Reset(now)
	base, _, baseErr := s.o.Heartbeat.Read()
	deadline := now.Add(s.o.StartTimeout)
	for {
		t := s.clock.NewTimer(s.o.Period)
		select {
		case <-ctx.Done():
			t.Stop()
			return down{stopped: true, reason: "stopped"}
		case e := <-exited:
			t.Stop()
			return down{reason: "exited before the first heartbeat: " + e.String(), exit: &e}
		case now = <-t.C():
		}
		cycle, st, err := s.Heartbeat()
		if err == nil && st == wire.Faulted {
			return down{reason: "executive reported a fault while starting"}
		}
		if err == nil && (cycle != base || (baseErr != nil && cycle > 0)) {
			break
		}
		if now.After(deadline) {
			return down{reason: fmt.Sprintf("%v: none within %v", ErrNoHeartbeat, s.o.StartTimeout)}
		}
	}
	wd.Reset(now)
	s.mu.Lock()
	s.since = now
	s.mu.Unlock()
	// Running first: a listener told the partition is up sees it in Status.
	s.setState(Running)
	for _, l := range s.o.Listeners {
		l.PartitionUp(s.o.Name)
	}
	up := down{wasUp: true, since: now}
	for {
		t := s.clock.NewTimer(s.o.Period)
		select {
		case <-ctx.Done():
			t.Stop()
			up.stopped, up.reason = true, "stopped"
			return up
		case e := <-exited:
			t.Stop()
			up.exit, up.reason = &e, "exited: "+e.String()
			return up
		case now = <-t.C():
		}
		cycle, st, err := s.Heartbeat()
		if reason := wd.Observe(now, cycle, st, err); reason != "" {
			up.reason = reason
			return up
		}
	}
}

// Heartbeat reads the heartbeat source and records the reading for Status.
func (s *Supervisor) Heartbeat() (uint64, wire.State, error) {
	cycle, st, err := s.o.Heartbeat.Read()
	if err == nil {
		s.mu.Lock()
		s.cycle, s.exec = cycle, st
		s.mu.Unlock()
	}
	return cycle, st, err
}

// takeDown records the fault, tells listeners (first, so the bridge marks
// data stale at once) and undoes host preparation.
func (s *Supervisor) takeDown(ctx context.Context, d down) {
	f := Fault{Reason: d.reason, Time: s.clock.Now()}
	if !d.stopped {
		s.setState(Faulted)
		s.mu.Lock()
		s.lastFault = &f
		s.mu.Unlock()
		s.log.Error("partition faulted", "reason", d.reason)
	}
	s.mu.Lock()
	s.since = time.Time{}
	s.mu.Unlock()
	if d.wasUp {
		for _, l := range s.o.Listeners {
			l.PartitionDown(s.o.Name, f)
		}
	}
	if !d.stopped {
		s.driveSafe(ctx, d)
		s.stopPartition(ctx)
	}
}

// driveSafe drives the outputs to their safe values from this side once
// the partition's program is gone (it exited, or was killed and seen to
// end); a program that may still run keeps them.
func (s *Supervisor) driveSafe(ctx context.Context, d down) {
	if s.o.SafeState == nil {
		s.setOutputs(Outputs{Driver: "devices", Detail: "the partition is down; the devices' own watchdogs hold the outputs"})
		return
	}
	if d.exit == nil {
		s.setOutputs(Outputs{Driver: "unknown", Detail: "the partition's program was not confirmed gone; outputs not taken over"})
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.StopTimeout)
	defer cancel()
	start := s.clock.Now()
	err := s.o.SafeState(sctx, s.o.Partition)
	o := Outputs{Driver: "supervisor", Safe: err == nil, Since: s.clock.Now()}
	if err != nil {
		o.Detail = "driving the safe state failed: " + err.Error()
		s.log.Error("outputs: safe state not reached", "err", err)
	} else {
		o.Detail = "safe state driven by the supervisor"
		s.log.Warn("outputs: driven to their safe state by the supervisor", "took", s.clock.Now().Sub(start))
	}
	s.setOutputs(o)
}

func (s *Supervisor) setOutputs(o Outputs) {
	s.mu.Lock()
	s.outputs = o
	s.mu.Unlock()
}

// stopPartition runs the backend's Stop with a bounded context that
// survives the cancellation of ctx.
func (s *Supervisor) stopPartition(ctx context.Context) {
	s.setState(Stopping)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.StopTimeout)
	defer cancel()
	if err := s.o.Partition.Stop(sctx); err != nil {
		s.log.Warn("partition stop incomplete", "err", err)
	}
}
