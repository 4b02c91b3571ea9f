// Package executivetest holds fakes of the executive's seams — a clock that
// advances instantly and can inject wake-up latency, a block program whose
// execution time is scripted, field I/O and a channel that record what the
// executive did — so executive tests run without threads, privileges or
// hardware. None of the fakes allocates on the executive's hot path.
package executivetest

import (
	"sync"
	"time"

	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Clock is a monotonic clock that jumps to every deadline at once. It is
// safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Duration
	// Wake, if set, returns the wake-up latency added after a sleep to
	// deadline.
	Wake func(deadline time.Duration) time.Duration
}

// NewClock returns a clock reading start.
func NewClock(start time.Duration) *Clock { return &Clock{now: start} }

// Now reads the clock.
func (c *Clock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// SleepUntil moves the clock to t (if it is behind) plus the Wake latency.
func (c *Clock) SleepUntil(t time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now < t {
		c.now = t
	}
	if c.Wake != nil {
		c.now += c.Wake(t)
	}
}

// Advance moves the clock forward by d (a program's execution time).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	c.mu.Unlock()
}

// Program is a block program. Each Run calls Step (if set) and advances
// Clock by Exec(run) (if both are set), which is how tests inject overruns.
type Program struct {
	Out   []tag.ID
	Clock *Clock
	// Exec returns the execution time of the n-th run (1-based).
	Exec func(n uint64) time.Duration
	// Step is the program's behaviour, e.g. writing its outputs.
	Step func(now, dt time.Duration)

	mu     sync.Mutex
	runs   uint64
	lastDT time.Duration
	params map[string]float64
}

// Run runs the program once.
func (p *Program) Run(now, dt time.Duration) {
	p.mu.Lock()
	p.runs++
	n := p.runs
	p.lastDT = dt
	p.mu.Unlock()
	if p.Step != nil {
		p.Step(now, dt)
	}
	if p.Clock != nil && p.Exec != nil {
		p.Clock.Advance(p.Exec(n))
	}
}

// Outputs lists the program's output tags.
func (p *Program) Outputs() []tag.ID { return p.Out }

// SetParam records a parameter; names not starting with a letter are rejected.
func (p *Program) SetParam(name string, v float64) error {
	if name == "" || !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z') {
		return errBadParam
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.params == nil {
		p.params = map[string]float64{}
	}
	p.params[name] = v
	return nil
}

// Param returns a parameter set through SetParam.
func (p *Program) Param(name string) (float64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.params[name]
	return v, ok
}

// Runs is how many times Run was called and the last dt.
func (p *Program) Runs() (uint64, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs, p.lastDT
}

type paramError struct{}

func (paramError) Error() string { return "executivetest: bad parameter name" }

var errBadParam error = paramError{}

// IO is field I/O over a fixed set of tags: ReadInputs copies Inputs into
// the table, WriteOutputs records the last value written per tag.
type IO struct {
	mu      sync.Mutex
	inputs  []tag.Sample
	set     []bool
	written []tag.Sample
	wrote   []bool
	writes  uint64
}

// NewIO returns I/O for a table of n tags.
func NewIO(n int) *IO {
	return &IO{inputs: make([]tag.Sample, n), set: make([]bool, n), written: make([]tag.Sample, n), wrote: make([]bool, n)}
}

// SetInput makes the device report v (good quality) for id.
func (f *IO) SetInput(id tag.ID, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs[id] = tag.Sample{Value: v, Quality: tag.Good}
	f.set[id] = true
}

// ReadInputs copies the inputs into tab.
func (f *IO) ReadInputs(tab *tag.Table, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns := now.UnixNano()
	for id, ok := range f.set {
		if ok && id < len(tab.Samples) {
			s := f.inputs[id]
			s.Time = ns
			tab.Samples[id] = s
		}
	}
}

// WriteOutputs records the values of ids.
func (f *IO) WriteOutputs(tab *tag.Table, ids []tag.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	for _, id := range ids {
		if int(id) < len(f.written) {
			f.written[id] = tab.Samples[id]
			f.wrote[id] = true
		}
	}
}

// Written returns the last sample written for id.
func (f *IO) Written(id tag.ID) (tag.Sample, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written[id], f.wrote[id]
}

// Writes is how many WriteOutputs calls were made.
func (f *IO) Writes() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// Channel records what the executive sends and feeds it queued commands.
type Channel struct {
	mu         sync.Mutex
	pending    [][]wire.Command
	unitRes    []wire.Result // DrainCommands' scratch
	results    []wire.Result
	events     []wire.Event
	heartbeats uint64
	last       executive.Heartbeat
	lastTasks  []executive.TaskCounters
	published  uint64
	lastCycle  uint64
	latencies  []uint64
}

// NewChannel returns a channel for an executive of tasks tasks.
func NewChannel(tasks int) *Channel {
	return &Channel{latencies: make([]uint64, tasks), lastTasks: make([]executive.TaskCounters, tasks),
		results: make([]wire.Result, 0, 64), events: make([]wire.Event, 0, 64)}
}

// Send queues commands for the next DrainCommands, each a unit of its own.
func (c *Channel) Send(cmds ...wire.Command) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cmd := range cmds {
		c.pending = append(c.pending, []wire.Command{cmd})
	}
}

// SendUnit queues cmds as one unit (as shm.Reader.SubmitAll does).
func (c *Channel) SendUnit(cmds ...wire.Command) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, append([]wire.Command(nil), cmds...))
}

// DrainCommands applies the queued units while fewer than max commands
// were taken.
func (c *Channel) DrainCommands(max int, apply func([]wire.Command, []wire.Result)) int {
	n := 0
	for n < max {
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.mu.Unlock()
			break
		}
		unit := c.pending[0]
		c.pending = c.pending[1:]
		c.mu.Unlock()
		n += len(unit)
		if cap(c.unitRes) < len(unit) {
			c.unitRes = make([]wire.Result, len(unit))
		}
		res := c.unitRes[:len(unit)]
		apply(unit, res)
		c.mu.Lock()
		c.results = append(c.results, res...)
		c.mu.Unlock()
	}
	return n
}

// Publish records the image's cycle.
func (c *Channel) Publish(_ *tag.Table, cycle uint64) {
	c.mu.Lock()
	c.published++
	c.lastCycle = cycle
	c.mu.Unlock()
}

// Heartbeat records the last heartbeat.
func (c *Channel) Heartbeat(h executive.Heartbeat) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heartbeats++
	copy(c.lastTasks, h.Tasks)
	h.Tasks = c.lastTasks
	c.last = h
}

// Event records an event.
func (c *Channel) Event(e wire.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

// RecordLatency counts the samples of each task.
func (c *Channel) RecordLatency(task int, _, _ time.Duration) {
	c.mu.Lock()
	if task < len(c.latencies) {
		c.latencies[task]++
	}
	c.mu.Unlock()
}

// Results returns the command results so far.
func (c *Channel) Results() []wire.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wire.Result(nil), c.results...)
}

// Events returns the events so far.
func (c *Channel) Events() []wire.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wire.Event(nil), c.events...)
}

// LastHeartbeat returns the last heartbeat and how many were sent.
func (c *Channel) LastHeartbeat() (executive.Heartbeat, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.last
	h.Tasks = append([]executive.TaskCounters(nil), c.lastTasks...)
	return h, c.heartbeats
}

// Published returns how many images were published and the last cycle.
func (c *Channel) Published() (n, cycle uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.published, c.lastCycle
}

// Latencies returns how many latency samples each task recorded.
func (c *Channel) Latencies() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.latencies...)
}
