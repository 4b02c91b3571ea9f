package executive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Errors returned by New and Run, to be matched with errors.Is.
var (
	// ErrConfig: the config cannot be run (bad period, a tag written by
	// two tasks, an unknown safe-state tag, a missing program).
	ErrConfig = errors.New("executive: bad config")
	// ErrStarted: Run was called twice.
	ErrStarted = errors.New("executive: already started")
	// ErrFault: a task failed and the executive stopped in the faulted state.
	ErrFault = errors.New("executive: faulted")
)

// Defaults of the config values the executive uses.
const (
	DefaultPriority = 80
	DefaultOverruns = 3
	DefaultCommands = 16
	DefaultHighest  = 100 * time.Millisecond
	DefaultDigits   = 3
	DefaultInterval = 10 * time.Second
)

// Options are the executive's injected dependencies and run settings. The
// zero value runs for real: monotonic clock, SCHED_FIFO, GC off.
type Options struct {
	Logger *slog.Logger
	// Clock paces the cycles; default rt.Monotonic.
	Clock Clock
	// Wall stamps tag values; default time.Now.
	Wall Wall
	// NoRealtime skips every real-time facility (tests with a fake clock).
	NoRealtime bool
	// KeepGC leaves the garbage collector as it is.
	KeepGC bool
	// Cycles stops each task after this many cycles; 0 runs until the
	// context is done.
	Cycles uint64
	// Interval is the length of the interval histograms handed to
	// OnInterval; default the config's latency.interval, else 10s.
	Interval time.Duration
	// OnInterval receives each task's finished interval histograms, on a
	// general goroutine (never the task's thread). The histograms are only
	// valid during the call; their start and end times are wall-clock
	// milliseconds.
	OnInterval func(task int, wake, exec *hdrhistogram.Histogram)
	// StartDelay is the time between the threads being ready and the first
	// deadline; default 10ms.
	StartDelay time.Duration
	// HandOver is this executive's own hand-over area (its region's): its
	// cycle grid is published there, and a Release command offers its state
	// through it. Nil: Release is unsupported.
	HandOver Baton
	// TakeFrom is the hand-over area of the executive this one replaces:
	// this one starts on standby, its deadlines on that one's cycle grid,
	// and drives the outputs only once a Take command's time has come and
	// the other has offered its state. One task only.
	TakeFrom Baton
}

// TaskStatus is one task's configuration, real-time setup and counters.
type TaskStatus struct {
	Name     string
	Period   time.Duration
	Priority int
	CPU      int
	Overrun  configs.OverrunPolicy
	RT       rt.Status
	// TID is the task's OS thread id once it has started (0 before), for
	// per-thread figures from /proc/self/task/TID; RelayTID is its second
	// thread's when the task runs as a relay (see RelayMaxPeriod).
	TID, RelayTID int
	TaskCounters
}

// Status is a copy of the executive's state.
type Status struct {
	State  wire.State
	Code   wire.FaultCode
	Reason string
	// RT merges the process's and every task thread's real-time setup.
	RT    rt.Status
	Tasks []TaskStatus
	// DroppedEvents counts events lost because a task's ring was full.
	DroppedEvents uint64
	// HandOver are the hand-over counters (zero without a hand-over area).
	HandOver HandOverStatus
}

// TaskHistograms are one task's cumulative histograms (nanoseconds).
type TaskHistograms struct {
	Task string
	Wake *hdrhistogram.Histogram
	Exec *hdrhistogram.Histogram
}

// Executive runs the cyclic tasks of one control config.
type Executive struct {
	log   *slog.Logger
	clock Clock
	wall  Wall
	opts  Options
	tab   *tag.Table
	io    IO
	ch    Channel
	tasks []*task
	share *shared // nil with one task
	// blockOut marks the tags some task's blocks write every cycle.
	blockOut []bool

	state   atomic.Uint32
	code    atomic.Uint32
	reason  atomic.Pointer[string]
	started atomic.Bool
	cancel  context.CancelFunc

	mu    sync.Mutex // guards rtst and cumul
	rtst  rt.Status
	cumul []TaskHistograms
}

// New prepares the executive for cfg's tasks on tab. programs binds each
// task's program to the table it runs on; io and ch may be nil (no field
// I/O, no channel).
func New(cfg *configs.Config, tab *tag.Table, programs Programs, io IO, ch Channel, opts Options) (*Executive, error) {
	if cfg == nil || tab == nil || programs == nil {
		return nil, fmt.Errorf("%w: config, tag table and programs are required", ErrConfig)
	}
	if len(cfg.Tasks) == 0 {
		return nil, fmt.Errorf("%w: no tasks", ErrConfig)
	}
	e := &Executive{log: opts.Logger, clock: opts.Clock, wall: opts.Wall, opts: opts, tab: tab, io: io, ch: ch}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.clock == nil {
		e.clock = rt.Monotonic{}
	}
	if e.wall == nil {
		e.wall = time.Now
	}
	if e.io == nil {
		e.io = nopIO{}
	}
	if e.ch == nil {
		e.ch = nopChannel{}
	}
	if e.opts.StartDelay <= 0 {
		e.opts.StartDelay = 10 * time.Millisecond
	}
	highest, digits, interval := cfg.Latency.Highest.D(), cfg.Latency.Digits, e.opts.Interval
	if highest <= 0 {
		highest = DefaultHighest
	}
	if digits < 1 || digits > 5 {
		digits = DefaultDigits
	}
	if interval <= 0 {
		interval = cfg.Latency.Interval.D()
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	overruns := cfg.Watchdog.Overruns
	if overruns <= 0 {
		overruns = DefaultOverruns
	}
	multi := len(cfg.Tasks) > 1
	e.blockOut = make([]bool, tab.Len())
	owner := make([]int, tab.Len())
	for i := range owner {
		owner[i] = ownerPrimary
		if in := tab.Info[i]; in.Device != "" && !in.Access.Writable() {
			owner[i] = ownerIO
		}
	}
	for i, tc := range cfg.Tasks {
		t, err := e.newTask(i, tc, cfg, tab, programs, multi)
		if err != nil {
			return nil, err
		}
		t.watchdog = uint64(overruns)
		t.rec = newRecorder(int64(highest), digits, interval)
		for _, id := range t.outputs {
			if id < 0 || int(id) >= tab.Len() {
				return nil, fmt.Errorf("%w: task %q: program output %d is not a tag", ErrConfig, tc.Name, id)
			}
			if owner[id] >= 0 && owner[id] != ownerPrimary {
				return nil, fmt.Errorf("%w: tag %q is written by tasks %q and %q (single-writer rule)", ErrConfig, tab.Info[id].Name, cfg.Tasks[owner[id]-1].Name, tc.Name)
			}
			e.blockOut[id] = true
			owner[id] = i + 1 // provisional, shifted so that 0 stays "primary"
		}
		e.tasks = append(e.tasks, t)
		e.cumul = append(e.cumul, TaskHistograms{Task: tc.Name, Wake: hdrhistogram.New(1, int64(highest), digits), Exec: hdrhistogram.New(1, int64(highest), digits)})
	}
	for i, o := range owner {
		switch {
		case o == ownerPrimary:
			owner[i] = 0
		case o > 0:
			owner[i] = o - 1
		}
	}
	if err := e.assignSafeState(cfg, owner); err != nil {
		return nil, err
	}
	e.placeRelays()
	if multi {
		e.share = &shared{slots: make([]slot, tab.Len()), areas: make([]area, len(e.tasks))}
		for id, o := range owner {
			if o >= 0 {
				e.share.areas[o].ids = append(e.share.areas[o].ids, tag.ID(id))
			}
		}
		for _, t := range e.tasks {
			e.share.publish(t.idx, t.tab)
		}
	}
	for _, t := range e.tasks {
		t.owner = owner
	}
	if opts.TakeFrom != nil && len(e.tasks) > 1 {
		return nil, fmt.Errorf("%w: a hand-over takes over one task; the config has %d", ErrConfig, len(e.tasks))
	}
	if opts.HandOver != nil || opts.TakeFrom != nil {
		e.tasks[0].ho = newHandover(opts.HandOver, opts.TakeFrom)
	}
	e.setState(wire.Booting, wire.NoFault, "")
	return e, nil
}

// Owner markers used while New assigns tags to tasks.
const (
	ownerPrimary = -1 // not written by blocks: the first task applies commands to it
	ownerIO      = -2 // a device input, read by every task from the IO
)

func (e *Executive) newTask(i int, tc configs.Task, cfg *configs.Config, tab *tag.Table, programs Programs, multi bool) (*task, error) {
	if tc.Period <= 0 {
		return nil, fmt.Errorf("%w: task %q: period must be positive", ErrConfig, tc.Name)
	}
	t := &task{e: e, idx: i, name: tc.Name, period: tc.Period.D(), priority: tc.Priority, cpu: -1,
		policy: tc.Overrun, commands: tc.Commands, tab: tab}
	if t.priority == 0 {
		t.priority = DefaultPriority
	}
	if t.priority < 1 || t.priority > 99 {
		return nil, fmt.Errorf("%w: task %q: priority %d is outside 1-99", ErrConfig, tc.Name, t.priority)
	}
	if t.policy == "" {
		t.policy = configs.OverrunSkip
	}
	if t.policy != configs.OverrunSkip && t.policy != configs.OverrunCatchUp {
		return nil, fmt.Errorf("%w: task %q: unknown overrun policy %q", ErrConfig, tc.Name, t.policy)
	}
	if t.commands <= 0 {
		t.commands = DefaultCommands
	}
	switch {
	case tc.CPU != nil:
		t.cpu = *tc.CPU
	case len(cfg.Partition.CPUs) > 0:
		t.cpu = cfg.Partition.CPUs[0]
	}
	if multi {
		t.tab = cloneTable(tab)
	}
	prog, err := programs(tc.Name, t.tab)
	if err != nil {
		return nil, fmt.Errorf("executive: task %q: program: %w", tc.Name, err)
	}
	if prog == nil {
		return nil, fmt.Errorf("%w: task %q has no program", ErrConfig, tc.Name)
	}
	t.prog = prog
	t.outputs = append([]tag.ID(nil), prog.Outputs()...)
	t.apply, t.check, t.applyOne = t.applyUnit, t.checkWrite, t.applyCommand
	if t.relayed() {
		t.relay = newRelay()
	}
	return t, nil
}

// assignSafeState gives each safe-state value to the task that owns the tag.
func (e *Executive) assignSafeState(cfg *configs.Config, owner []int) error {
	var errs []error
	for name, v := range cfg.Watchdog.SafeState {
		id, ok := e.tab.Lookup(name)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: %s: safe_state: unknown tag %q", ErrConfig, v.Pos, name))
			continue
		}
		in := e.tab.Info[id]
		o := owner[id]
		if o < 0 {
			errs = append(errs, fmt.Errorf("%w: %s: safe_state: tag %q is a device input and cannot be driven", ErrConfig, v.Pos, name))
			continue
		}
		sv := safeValue{id: id}
		if in.Type == tag.String {
			sv.text = v.Raw
		} else {
			f, err := v.Float()
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s: safe_state: tag %q: %v", ErrConfig, v.Pos, name, err))
				continue
			}
			sv.value = f
		}
		t := e.tasks[o]
		t.safe = append(t.safe, sv)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, t := range e.tasks {
		t.safeWrites = append([]tag.ID(nil), t.outputs...)
		for _, sv := range t.safe {
			if !containsID(t.safeWrites, sv.id) {
				t.safeWrites = append(t.safeWrites, sv.id)
			}
		}
	}
	return nil
}

func containsID(ids []tag.ID, id tag.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func cloneTable(t *tag.Table) *tag.Table {
	c := *t
	c.Samples = append([]tag.Sample(nil), t.Samples...)
	c.Text = append([]string(nil), t.Text...)
	return &c
}

func (e *Executive) setState(s wire.State, code wire.FaultCode, reason string) {
	e.reason.Store(&reason)
	e.code.Store(uint32(code))
	e.state.Store(uint32(s))
}

// enterSafe moves a running executive to the safe state; it reports whether
// this call made the change. Called on task threads when a fault occurs
// (allocates: it runs once per fault, not per cycle).
func (e *Executive) enterSafe(code wire.FaultCode, reason string) bool {
	if !e.state.CompareAndSwap(uint32(wire.Running), uint32(wire.Safe)) {
		return false
	}
	e.reason.Store(&reason)
	e.code.Store(uint32(code))
	e.log.Warn("executive: safe state: outputs at their safe values", "fault", code.String(), "reason", reason)
	return true
}

// State reports the executive's state, fault code and reason.
func (e *Executive) State() (wire.State, wire.FaultCode, string) {
	return wire.State(e.state.Load()), wire.FaultCode(e.code.Load()), *e.reason.Load()
}

// Status returns a copy of the executive's state and counters. Not for the
// hot path.
func (e *Executive) Status() Status {
	s, code, reason := e.State()
	st := Status{State: s, Code: code, Reason: reason}
	e.mu.Lock()
	st.RT = e.rtst
	e.mu.Unlock()
	for _, t := range e.tasks {
		ts := TaskStatus{Name: t.name, Period: t.period, Priority: t.priority, CPU: t.cpu, Overrun: t.policy, TaskCounters: t.stats.load()}
		e.mu.Lock()
		ts.RT, ts.TID = t.rtst, t.tid
		if t.relay != nil {
			ts.RelayTID = t.relay.tid
		}
		e.mu.Unlock()
		st.Tasks = append(st.Tasks, ts)
		st.DroppedEvents += t.events.dropped.Load()
	}
	if h := e.tasks[0].ho; h != nil {
		st.HandOver = h.status()
	}
	return st
}

// Histograms returns copies of every task's cumulative histograms: all
// cycles so far, up to the last finished interval while running, every
// cycle once Run has returned.
func (e *Executive) Histograms() []TaskHistograms {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]TaskHistograms, len(e.cumul))
	for i, h := range e.cumul {
		out[i] = TaskHistograms{Task: h.Task, Wake: h.Wake.Clone(), Exec: h.Exec.Clone()}
	}
	return out
}

// Run runs the tasks until ctx is done, Options.Cycles have run, or a task
// faults. On the way out every task drives its outputs to the safe state
// and the state is "stopping" (or "faulted", with an error wrapping
// ErrFault).
func (e *Executive) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	threads, relays := len(e.tasks), 0
	for _, t := range e.tasks {
		if t.relay != nil {
			relays++
		}
	}
	threads += relays
	var held *rt.Held
	if !e.opts.NoRealtime {
		var pst rt.Status
		// One P per thread that sleeps holding one (a relay's two threads
		// both hold one during a hand-over), and one for the general side.
		held, pst = rt.Process{LockMemory: true, DMALatency: true, GCOff: !e.opts.KeepGC,
			MinProcs: threads + 1}.Setup()
		e.mu.Lock()
		e.rtst = pst
		e.mu.Unlock()
	}
	defer held.Release()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.cancel = cancel

	ready := make(chan struct{}, threads)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, t := range e.tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.run(ctx, ready, start)
		}()
		if t.relay != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.runStandby(ctx, ready, start)
			}()
		}
	}
	for range threads {
		select {
		case <-ready:
		case <-ctx.Done():
		}
	}
	e.mu.Lock()
	var rtCPUs, tids []int
	for _, t := range e.tasks {
		e.rtst.Merge(t.rtst)
		if t.cpu >= 0 {
			rtCPUs = append(rtCPUs, t.cpu)
		}
		tids = append(tids, t.tid)
		if t.relay != nil {
			tids = append(tids, t.relay.tid)
		}
	}
	e.mu.Unlock()
	if !e.opts.NoRealtime {
		hk, hst := rt.Housekeeping(rtCPUs, tids)
		defer hk.Release()
		e.mu.Lock()
		e.rtst.Merge(hst)
		e.mu.Unlock()
	}
	e.mu.Lock()
	rst := e.rtst
	e.mu.Unlock()
	if !e.opts.NoRealtime {
		if rst.Degraded() {
			e.log.Warn(rst.String())
		} else {
			e.log.Info(rst.String())
		}
	}
	monoAtStart, wallAtStart := e.clock.Now(), e.wall()
	first := monoAtStart + e.opts.StartDelay
	first = e.alignFirst(first)
	for _, t := range e.tasks {
		t.first = first
	}
	e.setState(wire.Running, wire.NoFault, "")
	close(start)

	collected := make(chan struct{})
	go func() {
		defer close(collected)
		e.collect(ctx, monoAtStart, wallAtStart)
	}()
	wg.Wait()
	if s, _, _ := e.State(); s == wire.Running {
		// Cancelled while the threads were starting: they ran their stop
		// cycle before the state was running.
		e.setState(wire.Stopping, wire.FaultStop, "stopped")
	}
	cancel()
	<-collected
	end := e.clock.Now()
	for _, t := range e.tasks {
		e.absorb(t.idx, t.rec.final(end), monoAtStart, wallAtStart)
	}
	if e.share != nil {
		copy(e.tab.Samples, e.tasks[0].tab.Samples)
		copy(e.tab.Text, e.tasks[0].tab.Text)
		e.share.collect(0, e.tab)
	}
	if s, code, reason := e.State(); s == wire.Faulted {
		return fmt.Errorf("%w: %s: %s", ErrFault, code, reason)
	}
	return nil
}

// collect moves finished intervals from the tasks to the cumulative
// histograms until ctx is done. Runs on a general goroutine.
func (e *Executive) collect(ctx context.Context, mono time.Duration, wall time.Time) {
	poll := e.tasks[0].rec.interval / 4
	if poll > 100*time.Millisecond {
		poll = 100 * time.Millisecond
	}
	if poll < time.Millisecond {
		poll = time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		for _, t := range e.tasks {
			if p := t.rec.take(); p != nil {
				e.absorb(t.idx, p, mono, wall)
				t.rec.give(p)
			}
		}
		select {
		case <-ctx.Done():
			for _, t := range e.tasks {
				if p := t.rec.take(); p != nil {
					e.absorb(t.idx, p, mono, wall)
				}
			}
			return
		case <-tick.C:
		}
	}
}

// absorb merges one interval into the cumulative histograms and hands it to
// OnInterval.
func (e *Executive) absorb(task int, p *histPair, mono time.Duration, wall time.Time) {
	if p.wake.TotalCount() == 0 && p.exec.TotalCount() == 0 {
		return
	}
	startMs := wall.Add(p.start - mono).UnixMilli()
	endMs := wall.Add(p.end - mono).UnixMilli()
	for _, h := range []*hdrhistogram.Histogram{p.wake, p.exec} {
		h.SetStartTimeMs(startMs)
		h.SetEndTimeMs(endMs)
	}
	e.mu.Lock()
	e.cumul[task].Wake.Merge(p.wake)
	e.cumul[task].Exec.Merge(p.exec)
	e.mu.Unlock()
	if e.opts.OnInterval != nil {
		e.opts.OnInterval(task, p.wake, p.exec)
	}
}

// nopIO is the IO of an executive without field devices.
type nopIO struct{}

func (nopIO) ReadInputs(*tag.Table, time.Time)  {}
func (nopIO) WriteOutputs(*tag.Table, []tag.ID) {}

// nopChannel is the Channel of an executive without a general side.
type nopChannel struct{}

func (nopChannel) DrainCommands(int, func([]wire.Command, []wire.Result)) int { return 0 }
func (nopChannel) Publish(*tag.Table, uint64)                                 {}
func (nopChannel) Heartbeat(Heartbeat)                                        {}
func (nopChannel) Event(wire.Event)                                           {}
func (nopChannel) RecordLatency(int, time.Duration, time.Duration)            {}
