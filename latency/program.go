package latency

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/blocks/synth"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// program is what the measurement tasks run: the empty program, or the
// synthetic one with its input feeder and a channel on a shared region.
type program struct {
	programs executive.Programs
	io       executive.IO      // nil: none
	ch       executive.Channel // nil: none
	close    func()
}

// Close releases the region.
func (p *program) Close() {
	if p.close != nil {
		p.close()
	}
}

// idle is the empty program: nothing to run, nothing written.
type idle struct{}

func (idle) Run(time.Duration, time.Duration) {}
func (idle) Outputs() []tag.ID                { return nil }

// newProgram prepares the tasks' program for cfg: with Options.Blocks, the
// blocks compiled as rtkernel/app compiles them, fed by a synth.Feeder in
// the IO seam and publishing to a region file in a temporary directory
// under /dev/shm (removed by Close).
func newProgram(ctx context.Context, o Options, cfg *configs.Config, tab *tag.Table) (*program, error) {
	if o.Blocks == 0 {
		return &program{programs: func(string, *tag.Table) (executive.Program, error) { return idle{}, nil }}, nil
	}
	feed, err := synth.NewFeeder(tab, 0, synth.Groups(o.Blocks)*len(o.CPUs))
	if err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	epoch := time.Now().UnixNano() - int64(rt.Monotonic{}.Now())
	programs := func(task string, t *tag.Table) (executive.Program, error) {
		return blocks.CompileTask(cfg, t, task, epoch)
	}
	ch, closeRegion, err := openRegion(ctx, cfg, tab)
	if err != nil {
		return nil, err
	}
	return &program{programs: programs, io: feederIO{feed}, ch: ch, close: closeRegion}, nil
}

// openRegion creates cfg's shared region in a new directory under /dev/shm
// (the temporary directory where there is none) and attaches its writer.
func openRegion(ctx context.Context, cfg *configs.Config, tab *tag.Table) (*regionChannel, func(), error) {
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		return nil, nil, fmt.Errorf("latency: %w", err)
	}
	base := "/dev/shm"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = ""
	}
	dir, err := os.MkdirTemp(base, "mkrt-latency-")
	if err != nil {
		return nil, nil, fmt.Errorf("latency: %w", err)
	}
	region, err := shm.Open(shm.File(filepath.Join(dir, "region"), layout.Size(), true))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	w, err := shm.AttachWriter(ctx, region, layout, shm.WriterOptions{})
	if err != nil {
		region.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return &regionChannel{w: w}, func() {
		w.Close()
		region.Close()
		os.RemoveAll(dir)
	}, nil
}

// feederIO is the measurement tasks' IO: every cycle it moves the synthetic
// program's inputs (pv follows the wall clock's sub-second part). Hot path.
type feederIO struct{ f *synth.Feeder }

func (io feederIO) ReadInputs(tab *tag.Table, now time.Time) {
	io.f.Feed(tab.Samples, 5000+float64(now.Nanosecond())/1e5)
}

func (feederIO) WriteOutputs(*tag.Table, []tag.ID) {}

// regionChannel is the executive's Channel on the writer of a shared region:
// the image published every cycle (the changed tags; all of them the first
// time), the heartbeat, the events and the shared histograms, the writer
// calls rtkernel/app's channel makes. That channel is not exported, so this
// is its closest equivalent; nobody submits commands here, so DrainCommands
// only looks at the command ring. Hot path: allocates nothing.
type regionChannel struct {
	w         *shm.Writer
	published bool
	state     wire.State
}

func (c *regionChannel) DrainCommands(int, func([]wire.Command, []wire.Result)) int {
	return len(c.w.PollUnit())
}

func (c *regionChannel) Publish(tab *tag.Table, cycle uint64) {
	if !c.published {
		c.w.PublishAll(cycle, tab.Samples, tab.Text)
		c.published = true
		return
	}
	c.w.Publish(cycle, tab.Samples, tab.Text)
}

func (c *regionChannel) Heartbeat(h executive.Heartbeat) {
	if h.State != c.state {
		c.state = h.State
		c.w.SetState(h.State, h.Code)
	}
	c.w.Beat(h.Cycle, int64(h.Time))
}

func (c *regionChannel) Event(e wire.Event) {
	if e.Kind == wire.Overrun {
		c.w.Overrun(e.Task)
	}
	c.w.PushEvent(e)
}

func (c *regionChannel) RecordLatency(task int, wake, exec time.Duration) {
	c.w.RecordWakeup(task, int64(wake))
	c.w.RecordExec(task, int64(exec))
}
